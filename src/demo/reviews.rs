//! A Bookinfo-like reviews service. Each endpoint answers as its `version` label says; v2
//! differs the way a real new release might: an added field, a changed rating for some
//! products, about 30 ms slower, and an occasional 500.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::grpc::GrpcBody;

/// How a demo endpoint behaves, from its `version` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewsVersion {
    /// The current release: black stars.
    V1,
    /// The candidate: adds a `summary`, rates some products differently, slower, some 500s.
    V2,
    /// Red stars, otherwise like v1.
    V3,
}

impl ReviewsVersion {
    /// The version for a `version` label (`v1`, `v2`, `v3`; anything else behaves as v1).
    pub fn from_label(label: Option<&str>) -> Self {
        match label {
            Some("v2") => ReviewsVersion::V2,
            Some("v3") => ReviewsVersion::V3,
            _ => ReviewsVersion::V1,
        }
    }

    /// `v1`, `v2` or `v3`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewsVersion::V1 => "v1",
            ReviewsVersion::V2 => "v2",
            ReviewsVersion::V3 => "v3",
        }
    }

    /// The colour of its stars.
    pub(super) fn star_color(self) -> &'static str {
        match self {
            ReviewsVersion::V3 => "red",
            _ => "black",
        }
    }

    /// The two reviews' stars for `product`: v2's new rating algorithm rounds differently
    /// for every fifth product.
    pub(super) fn stars(self, product: u32) -> [u32; 2] {
        let stars = [5 - product % 2, 4 - product % 3];
        if self == ReviewsVersion::V2 && product.is_multiple_of(5) {
            [stars[0].saturating_sub(1).max(1), stars[1] + 1]
        } else {
            stars
        }
    }
}

/// Every v2 answer number divisible by this is a 500 (2%).
const V2_FAILURE_EVERY: u64 = 50;
/// What v2 adds to each answer's latency.
const V2_EXTRA_DELAY: Duration = Duration::from_millis(30);

/// State of one running endpoint.
#[derive(Debug)]
struct ReviewsEndpoint {
    version: ReviewsVersion,
    podname: String,
    answered: AtomicU64,
}

/// Serves the reviews API on `listener` until `cancel` fires.
pub(super) async fn serve(
    listener: TcpListener,
    version: ReviewsVersion,
    cancel: CancellationToken,
) {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let endpoint = Arc::new(ReviewsEndpoint {
        version,
        podname: format!("reviews-{}-{:x}", version.as_str(), addr.port()),
        answered: AtomicU64::new(0),
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let endpoint = Arc::clone(&endpoint);
        let service = service_fn(move |request| {
            let endpoint = Arc::clone(&endpoint);
            async move { Ok::<_, Infallible>(endpoint.answer(request).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                () = cancel.cancelled() => {}
            }
        });
    }
}

/// A demo answer: JSON over HTTP, or a gRPC message with its trailers.
type DemoBody = Either<Full<Bytes>, GrpcBody>;

impl ReviewsEndpoint {
    async fn answer(&self, request: Request<Incoming>) -> Response<DemoBody> {
        let grpc = super::grpc::is_grpc(request.headers());
        if grpc {
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            // Reflection is the lab's own call, not traffic: not counted, not delayed.
            if let Some(answer) = super::reflection::answer(self.version, parts.uri.path(), &body) {
                return answer.map(Either::Right);
            }
            let n = self.answered.fetch_add(1, Ordering::Relaxed) + 1;
            tokio::time::sleep(self.delay()).await;
            let fail = self.version == ReviewsVersion::V2 && n.is_multiple_of(V2_FAILURE_EVERY);
            let answer =
                super::grpc::answer(self.version, &self.podname, parts.uri.path(), &body, fail);
            return answer.map(Either::Right);
        }
        let n = self.answered.fetch_add(1, Ordering::Relaxed) + 1;
        self.answer_http(request, n).await.map(Either::Left)
    }

    /// Real services jitter; a few milliseconds keeps latency charts honest.
    fn delay(&self) -> Duration {
        let mut delay = Duration::from_micros(fastrand::u64(1_000..6_000));
        if self.version == ReviewsVersion::V2 {
            delay += V2_EXTRA_DELAY;
        }
        delay
    }

    async fn answer_http(&self, request: Request<Incoming>, n: u64) -> Response<Full<Bytes>> {
        let delay = self.delay();
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "unreadable body"}),
                );
            }
        };
        tokio::time::sleep(delay).await;

        let path = parts.uri.path();
        if path == "/health" {
            return json_response(
                StatusCode::OK,
                &json!({"status": "ok", "version": self.version.as_str()}),
            );
        }
        let Some(product) = path
            .strip_prefix("/reviews/")
            .and_then(|id| id.parse::<u32>().ok())
        else {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": format!("no such resource: {path}"), "hint": "try GET /reviews/1"}),
            );
        };
        if self.version == ReviewsVersion::V2 && n.is_multiple_of(V2_FAILURE_EVERY) {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({"error": "ratings service unavailable", "podname": self.podname}),
            );
        }
        match parts.method {
            Method::GET | Method::HEAD => json_response(StatusCode::OK, &self.reviews(product)),
            Method::POST | Method::PUT => {
                let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut created = json!({
                    "id": product.to_string(),
                    "status": "created",
                    "review": review,
                    "podname": self.podname,
                });
                if self.version == ReviewsVersion::V2 {
                    created["moderation"] = json!("pending");
                }
                json_response(StatusCode::CREATED, &created)
            }
            _ => json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": format!("{} is not supported on /reviews", parts.method)}),
            ),
        }
    }

    /// The reviews of one product, as this version renders them.
    fn reviews(&self, product: u32) -> Value {
        let color = self.version.star_color();
        let stars = self.version.stars(product);
        let served_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut reviews = json!({
            "id": product.to_string(),
            "podname": self.podname,
            "clustername": "null",
            "served_at": served_at,
            "reviews": [
                {
                    "reviewer": "Reviewer1",
                    "text": "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
                    "rating": {"stars": stars[0], "color": color}
                },
                {
                    "reviewer": "Reviewer2",
                    "text": "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.",
                    "rating": {"stars": stars[1], "color": color}
                }
            ]
        });
        if self.version == ReviewsVersion::V2 {
            let average = f64::from(stars[0] + stars[1]) / 2.0;
            reviews["summary"] = json!({"average_stars": average, "count": 2});
        }
        reviews
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
