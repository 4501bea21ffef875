//! The controller's HTTP server: CRL distribution points and health.
//!
//! `GET /crl/{namespace}/{issuer}.crl` serves the DER CRL (what the distribution point URL in
//! certificates should name), `.pem` the PEM one; `/metrics` the Prometheus metrics;
//! `/healthz` and `/readyz` answer 200 on every replica, leader or standby: a standby serves
//! CRLs and metrics too, so it belongs behind the Service, and readiness gated on leadership
//! would only make rolling updates wait for an election. `/readyz` waits for the webhook, when
//! there is one: the Service must not send admissions to a replica not yet serving them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use crate::controller::context::Context;
use crate::controller::crl::{CRL_DER_KEY, crl_config_map_name};
use crate::pki::pem::encode_pem;

/// Serves until the process ends; `/readyz` answers 200 once `ready` is true. A bind failure is
/// returned at once.
pub async fn serve(
    address: SocketAddr,
    ctx: Arc<Context>,
    ready: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(address = %listener.local_addr()?, "HTTP server listening");
    let readyz = move || {
        let ready = ready.load(Ordering::Acquire);
        async move {
            if ready {
                (StatusCode::OK, "ok\n")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "webhook not serving yet\n")
            }
        }
    };
    let router = Router::new()
        .route("/crl/{namespace}/{file}", get(crl))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(ctx);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "HTTP server stopped");
        }
    });
    Ok(())
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::controller::runtime::metrics::render(),
    )
        .into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "CRL temporarily unavailable\n",
    )
        .into_response()
}

async fn crl(
    State(ctx): State<Arc<Context>>,
    Path((namespace, file)): Path<(String, String)>,
) -> Response {
    let (issuer, pem) = match (file.strip_suffix(".crl"), file.strip_suffix(".pem")) {
        (Some(issuer), _) => (issuer.to_string(), false),
        (_, Some(issuer)) => (issuer.to_string(), true),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "expected <issuer>.crl or <issuer>.pem\n",
            )
                .into_response();
        }
    };
    let body = match ctx.published_crl(&namespace, &issuer) {
        Some(crl) => Some(if pem { crl.pem.into_bytes() } else { crl.der }),
        // Published by another replica, or before this process started. The ConfigMap is
        // writable in the Issuer's namespace, so its copy is served only if the ledger says it
        // is a CRL that was published (an older genuine CRL would un-revoke for its readers).
        None => {
            let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
            let der = match config_maps.get_opt(&crl_config_map_name(&issuer)).await {
                Ok(config_map) => config_map
                    .and_then(|c| c.binary_data)
                    .and_then(|d| d.get(CRL_DER_KEY).map(|b| b.0.clone())),
                Err(error) => {
                    tracing::warn!(%error, %namespace, %issuer, "reading the CRL ConfigMap failed");
                    return unavailable();
                }
            };
            match der {
                Some(der) => match ctx.ledger.is_latest_published(&der).await {
                    Ok(true) if pem => Some(encode_pem("X509 CRL", &der).into_bytes()),
                    Ok(true) => Some(der),
                    Ok(false) => None,
                    Err(error) => {
                        tracing::warn!(%error, %namespace, %issuer, "reading the ledger failed");
                        return unavailable();
                    }
                },
                None => None,
            }
        }
    };
    match body {
        Some(body) => {
            let content_type = if pem {
                "application/x-pem-file"
            } else {
                "application/pkix-crl"
            };
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "max-age=60"),
                ],
                body,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no CRL published for this issuer\n").into_response(),
    }
}
