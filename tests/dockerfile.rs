//! The Dockerfile cannot be built here (no container engine; the kind workflow builds it), so its
//! structure is checked instead: valid instructions, stages that exist, a static musl build of
//! the crate's own binary with its rust-version, the final image distroless/static running as
//! the user the chart expects, and a .dockerignore that keeps what cargo needs.

use std::path::Path;

use anyhow::Context;

/// Dockerfile instructions (the Dockerfile reference).
const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// One instruction, continuation lines joined.
struct Instruction {
    keyword: String,
    arguments: String,
}

fn parse(text: &str) -> anyhow::Result<Vec<Instruction>> {
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, arguments) =
                    pending.split_once(char::is_whitespace).with_context(|| {
                        format!("line {}: an instruction without arguments", number + 1)
                    })?;
                let keyword = keyword.to_ascii_uppercase();
                anyhow::ensure!(
                    INSTRUCTIONS.contains(&keyword.as_str()),
                    "line {}: unknown instruction {keyword}",
                    number + 1
                );
                instructions.push(Instruction {
                    keyword,
                    arguments: arguments.trim().to_string(),
                });
                pending.clear();
            }
        }
    }
    anyhow::ensure!(
        pending.is_empty(),
        "the Dockerfile ends inside a continued line"
    );
    Ok(instructions)
}

fn repository_file(name: &str) -> anyhow::Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

#[test]
fn dockerfile_builds_a_static_binary_into_distroless_as_nonroot() -> anyhow::Result<()> {
    let text = repository_file("Dockerfile")?;
    anyhow::ensure!(
        text.starts_with("# syntax=docker/dockerfile:1\n"),
        "the first line must select the BuildKit frontend (RUN --mount needs it)"
    );
    let instructions = parse(&text)?;

    // Stages, in order, and every COPY --from names an earlier one.
    let mut stages: Vec<(String, Vec<&Instruction>)> = Vec::new();
    for instruction in &instructions {
        if instruction.keyword == "FROM" {
            let words: Vec<&str> = instruction.arguments.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => name.to_string(),
                [_] => String::new(),
                _ => anyhow::bail!(
                    "FROM {}: expected an image and an optional AS name",
                    instruction.arguments
                ),
            };
            stages.push((name, vec![instruction]));
        } else if let Some((_, stage)) = stages.last_mut() {
            stage.push(instruction);
        } else {
            anyhow::ensure!(
                instruction.keyword == "ARG",
                "{} before the first FROM",
                instruction.keyword
            );
        }
        let copied_from = (instruction.keyword == "COPY")
            .then(|| {
                instruction
                    .arguments
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("--from="))
            })
            .flatten();
        if let Some(from) = copied_from {
            let earlier = &stages[..stages.len().saturating_sub(1)];
            anyhow::ensure!(
                earlier.iter().any(|(name, _)| name == from),
                "COPY --from={from} names no earlier stage"
            );
        }
    }
    anyhow::ensure!(
        stages.len() == 2,
        "expected a build stage and a final stage, got {}",
        stages.len()
    );

    // The build stage: the crate's rust-version, a locked release build of `iamra` for musl,
    // without the development tooling.
    let rust_version = cargo_rust_version(&repository_file("Cargo.toml")?)?;
    let rust_version_arg = instructions
        .iter()
        .find(|i| i.keyword == "ARG" && i.arguments.starts_with("RUST_VERSION="))
        .context("no ARG RUST_VERSION")?;
    anyhow::ensure!(
        rust_version_arg.arguments == format!("RUST_VERSION={rust_version}"),
        "ARG {} differs from Cargo.toml's rust-version {rust_version}",
        rust_version_arg.arguments
    );
    let (_, build) = &stages[0];
    anyhow::ensure!(
        build[0].arguments.starts_with("rust:${RUST_VERSION}"),
        "build stage base: {}",
        build[0].arguments
    );
    let cargo_build = build
        .iter()
        .find(|i| i.keyword == "RUN" && i.arguments.contains("cargo build"))
        .context("the build stage runs no cargo build")?;
    for needed in [
        "--release",
        "--locked",
        "--no-default-features",
        "--bin iamra",
        "unknown-linux-musl",
    ] {
        anyhow::ensure!(
            cargo_build.arguments.contains(needed),
            "cargo build without {needed}: {}",
            cargo_build.arguments
        );
    }

    // The final stage: distroless/static, the binary, the nonroot user, the exec-form entrypoint.
    let (_, runtime) = &stages[1];
    anyhow::ensure!(
        runtime[0].arguments == "gcr.io/distroless/static-debian12:nonroot",
        "final base image: {}",
        runtime[0].arguments
    );
    let find = |keyword: &str| {
        runtime
            .iter()
            .find(|i| i.keyword == keyword)
            .map(|i| i.arguments.as_str())
    };
    anyhow::ensure!(
        find("COPY") == Some("--from=build /iamra /iamra"),
        "final COPY: {:?}",
        find("COPY")
    );
    anyhow::ensure!(
        find("USER") == Some("65532:65532"),
        "USER: {:?}",
        find("USER")
    );
    let entrypoint: Vec<String> =
        serde_json::from_str(find("ENTRYPOINT").context("no ENTRYPOINT")?)
            .context("ENTRYPOINT is not in exec (JSON) form")?;
    anyhow::ensure!(entrypoint == ["/iamra"], "ENTRYPOINT: {entrypoint:?}");

    // The chart runs the image as that same user.
    let deployment = repository_file("charts/iamra/templates/deployment.yaml")?;
    anyhow::ensure!(
        deployment.contains("runAsUser: 65532"),
        "the chart's runAsUser is not the image's user"
    );
    Ok(())
}

#[test]
fn dockerignore_keeps_what_cargo_needs() -> anyhow::Result<()> {
    let ignored: Vec<String> = repository_file(".dockerignore")?
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(
        ignored.iter().any(|line| line == "target"),
        ".dockerignore does not leave out target/"
    );
    // cargo reads every target the manifest declares, so tests/ and benches/ must reach the
    // build; .cargo/config.toml sets how aws-lc-sys is built.
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "tests",
        "benches",
        ".cargo",
    ] {
        anyhow::ensure!(
            !ignored.iter().any(|line| line.trim_matches('/') == needed),
            ".dockerignore leaves out {needed}, which the build needs"
        );
    }
    Ok(())
}

/// Cargo.toml's rust-version (one line; no TOML parser in the dependencies for it).
fn cargo_rust_version(manifest: &str) -> anyhow::Result<String> {
    manifest
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .map(|value| value.trim().trim_matches('"').to_string())
        .context("Cargo.toml has no rust-version line")
}
