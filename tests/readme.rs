//! The README shows every sample of `config/samples/` as it is, so what users read is what the
//! tests apply.

#[test]
fn readme_shows_every_sample_verbatim() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut samples: Vec<_> = std::fs::read_dir(root.join("config/samples"))
        .expect("config/samples")
        .map(|entry| entry.expect("sample").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    samples.sort();
    assert!(samples.len() >= 5, "{samples:?}");
    for path in samples {
        let text = std::fs::read_to_string(&path).expect("sample text");
        let block = format!("```yaml\n{}\n```", text.trim_end());
        assert!(
            readme.contains(&block),
            "README.md does not show {} as it is",
            path.display()
        );
    }
}
