//! One request's way through the lab, in the order of the sidecar's filter chain: route
//! selection, the fault filter, the CORS filter, then the router (a local answer, or the
//! finalised request forwarded with its shadow copies). Each stage is a file of its own.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::future::Either;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::capture::ResponseFlags;
use crate::routing::action::RequestUrl;
use crate::routing::{ActionKind, RouteAction};

use super::Shared;
use super::arrival::{Arrival, Routed};
use super::body::ProxyBody;
use super::cors::{self, CorsDecision};
use super::error::ProxyError;
use super::fault;
use super::forward::{Filtered, Prepared, PrimaryJob};
use super::local::LocalReply;
use super::tunnel::Upgrade;

/// Where the router stage leaves a request.
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per request and taken apart at once; boxing the job would add an allocation"
)]
enum RouterOutcome<'r> {
    /// Answered already (a local answer, or an error before any upstream).
    Answer(Response<ProxyBody>),
    /// Ready for its primary.
    Send(PrimaryJob<'r>),
    /// An upgrade (WebSocket and the like), tunnelled to the primary.
    Upgrade(Box<Upgrade<'r>>),
}

impl Shared {
    /// Handles one client request; never fails (errors become the answers Envoy gives).
    pub(super) async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        client: Option<std::net::SocketAddr>,
    ) -> Response<ProxyBody> {
        let route: Arc<crate::routing::Route>;
        // The request's stages before its primary, in a block: what they hold is gone by
        // the wait for the primary, so this future, moved whole for every request, does
        // not keep their room. Their rare waits (a tunnel, a fault) are boxed, and awaited
        // after the block too.
        let next = {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            self.counters.request();
            let arrival = Arrival::new(id, request, client);
            if arrival.parts.method == http::Method::CONNECT {
                Either::Right(boxed(Arc::clone(&self).connect_tunnel(arrival)))
            } else {
                let routed = match self.route(&arrival) {
                    Ok(routed) => routed,
                    Err(no_route) => {
                        return self.answer_no_route(arrival, &ProxyError::NoRoute(no_route));
                    }
                };
                route = Arc::clone(&routed.resolution.route);
                // One generator per request, seeded from the run seed and the request's
                // sequence number, so a seed repeats the same draws whatever the
                // interleaving of requests.
                let rng = fastrand::Rng::with_seed(splitmix64(self.seed ^ splitmix64(id)));
                if route.fault.is_some() {
                    Either::Right(boxed(Arc::clone(&self).faulted(arrival, routed, rng)))
                } else {
                    let stages = Stages {
                        rng,
                        flags: ResponseFlags::NONE,
                        steps: Vec::new(),
                    };
                    match self.router(arrival, routed, stages, &route) {
                        RouterOutcome::Send(job) => {
                            Either::Left(Arc::clone(&self).send_primary(job))
                        }
                        RouterOutcome::Answer(answer) => return answer,
                        RouterOutcome::Upgrade(up) => {
                            Either::Right(boxed(Arc::clone(&self).upgrade(*up)))
                        }
                    }
                }
            }
        };
        next.await
    }

    /// The fault filter's stage, then the rest of the request's way (a route with a fault
    /// is rare, and this future is boxed).
    async fn faulted(
        self: Arc<Self>,
        arrival: Arrival,
        routed: Routed,
        mut rng: fastrand::Rng,
    ) -> Response<ProxyBody> {
        let route = Arc::clone(&routed.resolution.route);
        let mut flags = ResponseFlags::NONE;
        let mut steps = Vec::new();
        if let Some(fault) = &route.fault {
            let grpc = fault::is_grpc(&arrival.parts.headers);
            let outcome = fault::run(fault, grpc, || rng.f64()).await;
            if let Some(delay) = outcome.delayed {
                flags = flags.union(ResponseFlags::DI);
                steps.push(format!("fault: delayed {delay:?}"));
            }
            if let Some(mut reply) = outcome.aborted {
                flags = flags.union(ResponseFlags::FI);
                steps.push(format!("fault: aborted {}", reply.status.as_u16()));
                // Envoy applies the route's response headers to a local reply; the CORS
                // filter, after the fault filter, never saw the request.
                route.response_headers.apply(&mut reply.headers);
                return self.answer_locally(
                    arrival,
                    routed,
                    ActionKind::FaultAbort,
                    reply,
                    flags,
                    steps,
                );
            }
        }
        let stages = Stages { rng, flags, steps };
        match self.router(arrival, routed, stages, &route) {
            RouterOutcome::Send(job) => Arc::clone(&self).send_primary(job).await,
            RouterOutcome::Answer(answer) => answer,
            RouterOutcome::Upgrade(up) => Box::pin(Arc::clone(&self).upgrade(*up)).await,
        }
    }

    /// The CORS filter, then the router: a local answer, an upgrade, or the finalised
    /// request ready for its primary.
    fn router<'r>(
        self: &Arc<Self>,
        arrival: Arrival,
        routed: Routed,
        stages: Stages,
        route: &'r crate::routing::Route,
    ) -> RouterOutcome<'r> {
        let Stages {
            rng,
            flags,
            mut steps,
        } = stages;
        let cors = match &route.cors {
            Some(policy) => {
                match cors::decide(policy, &arrival.parts.method, &arrival.parts.headers) {
                    CorsDecision::Pass => None,
                    CorsDecision::Respond(headers) => Some(headers),
                    CorsDecision::Preflight(reply) => {
                        steps.push("CORS: preflight answered".to_owned());
                        return RouterOutcome::Answer(self.answer_locally(
                            arrival,
                            routed,
                            ActionKind::CorsPreflight,
                            reply,
                            flags,
                            steps,
                        ));
                    }
                }
            }
            None => None,
        };

        // What a local answer's Location is built from (not needed to forward).
        let url = || RequestUrl {
            scheme: "http",
            authority: arrival.authority(),
            path_and_query: arrival.path_and_query.as_str(),
            port: routed.port,
        };
        let (action, mut reply) = match &route.action {
            RouteAction::Forward(forward) => {
                let filtered = Filtered {
                    rng,
                    flags,
                    steps,
                    cors,
                };
                if let Some(protocol) = super::tunnel::upgrade_protocol(&arrival.parts) {
                    return RouterOutcome::Upgrade(Box::new(Upgrade {
                        arrival,
                        routed,
                        filtered,
                        forward,
                        protocol,
                    }));
                }
                return match self.prepare_forward(arrival, routed, filtered, forward) {
                    Prepared::Send(job) => RouterOutcome::Send(job),
                    Prepared::Answered(answer) => RouterOutcome::Answer(answer),
                };
            }
            RouteAction::Redirect(redirect) => (
                ActionKind::Redirect,
                LocalReply::redirect(redirect, &url(), routed.resolution.matched),
            ),
            RouteAction::DirectResponse(direct) => (
                ActionKind::DirectResponse,
                LocalReply::direct(direct, &url()),
            ),
        };
        route.response_headers.apply(&mut reply.headers);
        if let Some(cors) = &cors {
            cors.apply(&mut reply.headers);
        }
        RouterOutcome::Answer(self.answer_locally(arrival, routed, action, reply, flags, steps))
    }
}

/// What the stages before the router leave for it: the request's draws, its flags and
/// the trace's steps.
struct Stages {
    rng: fastrand::Rng,
    flags: ResponseFlags,
    steps: Vec<String>,
}

/// A rare path's future, boxed so that the common request's does not carry it.
fn boxed<'a>(
    future: impl std::future::Future<Output = Response<ProxyBody>> + Send + 'a,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<ProxyBody>> + Send + 'a>> {
    Box::pin(future)
}

/// SplitMix64: spreads consecutive request numbers into unrelated seeds.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
