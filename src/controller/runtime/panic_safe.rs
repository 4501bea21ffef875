//! A panic in one reconcile fails that object, not the process. kube-runtime runs each
//! reconcile in a task whose JoinError it unwraps, so a panic would end the controller and with
//! it the webhook on that replica (with `failurePolicy: Fail`, pod creation in opted-in
//! namespaces would stop). Caught here, it becomes the object's error: logged, counted, a Warning
//! event on the object, retried with the usual backoff.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::Resource;
use kube::runtime::controller::Action;

use crate::controller::context::Context;
use crate::controller::error::Error;
use crate::controller::reasons;

/// What a panic said, when it said it as text.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// `reconcile`, with a panic turned into [`Error::Panicked`] for the object it was reconciling.
pub fn panic_safe<K, F, Fut>(
    reconcile: F,
) -> impl Fn(Arc<K>, Arc<Context>) -> BoxFuture<'static, Result<Action, Error>> + Send + Sync + 'static
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |object, ctx| {
        let reference = object.object_ref(&());
        let reconciling = reconcile(object, ctx.clone());
        async move {
            match AssertUnwindSafe(reconciling).catch_unwind().await {
                Ok(result) => result,
                Err(payload) => {
                    let message = panic_message(payload.as_ref());
                    tracing::error!(%message, "reconcile panicked; the object is retried with backoff");
                    ctx.publish_event_about(
                        &reference,
                        true,
                        reasons::INTERNAL_ERROR,
                        "Reconcile",
                        format!(
                            "iamra hit a bug reconciling this object ({message}); it is retried with backoff, and other objects are not affected. Please report it"
                        ),
                    )
                    .await;
                    Err(Error::Panicked(message))
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    async fn explodes(_: Arc<ConfigMap>, _: Arc<Context>) -> Result<Action, Error> {
        let serials: Vec<u8> = Vec::new();
        // An index out of bounds, as a bug would have it.
        let first = serials[serials.len()];
        Ok(Action::requeue(std::time::Duration::from_secs(u64::from(
            first,
        ))))
    }

    async fn works(_: Arc<ConfigMap>, _: Arc<Context>) -> Result<Action, Error> {
        Ok(Action::await_change())
    }

    #[tokio::test]
    async fn a_panicking_reconcile_fails_its_object_and_the_next_one_runs() {
        // Nothing listens there: the Warning event is attempted and its failure only logged.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let ctx = Arc::new(Context::new(
            client,
            aws_config::SdkConfig::builder().build(),
            "test".into(),
            Default::default(),
            Arc::new(crate::fence::LeadershipFence::unfenced()),
        ));
        let mut object = ConfigMap::default();
        object.metadata.name = Some("subject".into());
        object.metadata.namespace = Some("default".into());
        let object = Arc::new(object);

        let failing = panic_safe(explodes);
        match failing(object.clone(), ctx.clone()).await {
            Err(Error::Panicked(message)) => {
                assert!(message.contains("index out of bounds"), "{message}")
            }
            other => panic!("the panic was not caught as the object's error: {other:?}"),
        }
        let fine = panic_safe(works);
        assert!(fine(object, ctx).await.is_ok());
    }
}
