//! One request's way through the lab, in the order of the sidecar's filter chain: route
//! selection, the fault filter, the CORS filter, then the router (a local answer, or the
//! finalised request forwarded with its shadow copies). Each stage is a file of its own.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::capture::ResponseFlags;
use crate::routing::action::RequestUrl;
use crate::routing::{ActionKind, RouteAction};

use super::Shared;
use super::arrival::Arrival;
use super::body::ProxyBody;
use super::cors::{self, CorsDecision};
use super::error::ProxyError;
use super::fault;
use super::forward::{Filtered, Prepared};
use super::local::LocalReply;

impl Shared {
    /// Handles one client request; never fails (errors become the answers Envoy gives).
    pub(super) async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        client: Option<std::net::SocketAddr>,
    ) -> Response<ProxyBody> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.counters.request();
        let arrival = Arrival::new(id, request, client);
        if arrival.parts.method == http::Method::CONNECT {
            // Boxed, as the upgrade below: the common request's future stays small.
            return Box::pin(self.connect_tunnel(arrival)).await;
        }
        let routed = match self.route(&arrival) {
            Ok(routed) => routed,
            Err(no_route) => return self.answer_no_route(arrival, &ProxyError::NoRoute(no_route)),
        };
        let route = Arc::clone(&routed.resolution.route);
        // One generator per request, seeded from the run seed and the request's sequence
        // number, so a seed repeats the same draws whatever the interleaving of requests.
        let mut rng = fastrand::Rng::with_seed(splitmix64(self.seed ^ splitmix64(id)));
        let mut flags = ResponseFlags::NONE;
        let mut steps = Vec::new();

        if let Some(fault) = &route.fault {
            // Not a borrow of the request across the delay: this future is moved whole for
            // every request, and a borrowed local keeps its room in it for good.
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

        let cors = match &route.cors {
            Some(policy) => {
                match cors::decide(policy, &arrival.parts.method, &arrival.parts.headers) {
                    CorsDecision::Pass => None,
                    CorsDecision::Respond(headers) => Some(headers),
                    CorsDecision::Preflight(reply) => {
                        steps.push("CORS: preflight answered".to_owned());
                        return self.answer_locally(
                            arrival,
                            routed,
                            ActionKind::CorsPreflight,
                            reply,
                            flags,
                            steps,
                        );
                    }
                }
            }
            None => None,
        };

        let url = RequestUrl {
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
                    // Boxed: the common request's future does not carry the upgrade's.
                    return Box::pin(
                        Arc::clone(&self).upgrade(arrival, routed, filtered, forward, protocol),
                    )
                    .await;
                }
                return match self.prepare_forward(arrival, routed, filtered, forward) {
                    Prepared::Send(job) => Arc::clone(&self).send_primary(job).await,
                    Prepared::Answered(answer) => answer,
                };
            }
            RouteAction::Redirect(redirect) => (
                ActionKind::Redirect,
                LocalReply::redirect(redirect, &url, routed.resolution.matched),
            ),
            RouteAction::DirectResponse(direct) => {
                (ActionKind::DirectResponse, LocalReply::direct(direct, &url))
            }
        };
        route.response_headers.apply(&mut reply.headers);
        if let Some(cors) = &cors {
            cors.apply(&mut reply.headers);
        }
        self.answer_locally(arrival, routed, action, reply, flags, steps)
    }
}

/// SplitMix64: spreads consecutive request numbers into unrelated seeds.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
