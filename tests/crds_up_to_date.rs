//! `crds/` (and the chart's copy in `charts/iamra/crds/`) must hold exactly what `iamra crds`
//! generates from the Rust types.

use std::collections::BTreeSet;
use std::path::Path;

use iamra::api::{crd_file_name, crd_yaml, custom_resource_definitions};

#[test]
fn checked_in_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut expected_files = BTreeSet::new();
    for crd in custom_resource_definitions() {
        let file = crd_file_name(&crd);
        let generated = crd_yaml(&crd).expect("CRDs serialize to YAML");
        let checked_in = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        assert!(
            checked_in == generated,
            "crds/{file} is stale: run `cargo run -- crds --output-dir crds`"
        );
        expected_files.insert(file);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        present, expected_files,
        "crds/ holds files no type generates"
    );
}

/// The chart installs CRDs from its own `crds/` (Helm never templates them): that copy must be
/// exactly the generated one too.
#[test]
fn chart_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/iamra/crds");
    let mut expected_files = BTreeSet::new();
    for crd in custom_resource_definitions() {
        let file = crd_file_name(&crd);
        let generated = crd_yaml(&crd).expect("CRDs serialize to YAML");
        let in_chart = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        assert!(
            in_chart == generated,
            "charts/iamra/crds/{file} is stale: run `cargo run -- crds --output-dir charts/iamra/crds` \
             (and scripts/render-manifests.sh, which copies them into config/default)"
        );
        expected_files.insert(file);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("charts/iamra/crds/ exists")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        present, expected_files,
        "charts/iamra/crds/ holds files no type generates"
    );
}
