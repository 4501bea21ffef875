//! Standard Kubernetes conditions, keeping `lastTransitionTime` while the status is unchanged.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition of `type_`, carrying over the transition time of `previous` when its status is
/// the same.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    }
}

/// Whether `conditions` has `type_` with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Whether two statuses differ in anything but condition transition times. Writing an unchanged
/// status would wake the controller's own watch for nothing.
pub fn status_changed<T: serde::Serialize>(previous: &T, next: &T) -> bool {
    fn without_times(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => map
                .into_iter()
                .filter(|(key, _)| key != "lastTransitionTime")
                .map(|(key, value)| (key, without_times(value)))
                .collect(),
            serde_json::Value::Array(items) => items.into_iter().map(without_times).collect(),
            other => other,
        }
    }
    let (Ok(previous), Ok(next)) = (serde_json::to_value(previous), serde_json::to_value(next))
    else {
        return true;
    };
    without_times(previous) != without_times(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let first = condition(&[], "Ready", true, "Issued", "ok", Some(1));
        let earlier = Time(first.last_transition_time.0 - jiff::SignedDuration::from_secs(60));
        let previous = vec![Condition {
            last_transition_time: earlier.clone(),
            ..first
        }];
        let same = condition(&previous, "Ready", true, "Renewed", "ok", Some(2));
        assert_eq!(same.last_transition_time, earlier);
        let flipped = condition(&previous, "Ready", false, "Failed", "no", Some(2));
        assert_ne!(flipped.last_transition_time, earlier);
        assert!(is_true(&previous, "Ready"));
        assert!(!is_true(&[flipped], "Ready"));
    }
}
