//! Integration tests on a real etcd + kube-apiserver, started once for this test binary and
//! stopped when the run ends. Every test gets its own namespace.

mod bad_input;
mod ca_rotation;
mod chart;
mod cluster;
mod crl_quota;
mod crl_split;
mod events;
mod issuance;
// Shared with tests/chart.rs, which uses parts this binary does not.
mod fault_proxy;
mod faults;
#[allow(dead_code)]
#[path = "../support/helm.rs"]
mod helm;
mod kms;
mod leader_election;
mod leader_fencing;
mod ledger;
mod ledger_model;
mod live_sessions;
mod metrics;
mod minimums;
mod openssl;
mod processes;
mod rbac;
mod revocation;
mod samples;
mod schema_validation;
mod tenancy;
mod tls_providers;
mod webhook;

use std::process::ExitCode;

use cluster::TestCluster;

fn main() -> ExitCode {
    let arguments = libtest_mimic::Arguments::from_args();
    let cluster = if arguments.list {
        TestCluster::not_started()
    } else {
        match TestCluster::start() {
            Ok(cluster) => cluster,
            Err(error) => {
                eprintln!("cannot start the test control plane: {error:#}");
                return ExitCode::FAILURE;
            }
        }
    };
    let mut trials = Vec::new();
    trials.extend(samples::trials(&cluster));
    trials.extend(schema_validation::trials(&cluster));
    trials.extend(rbac::trials(&cluster));
    trials.extend(issuance::trials(&cluster));
    trials.extend(kms::trials(&cluster));
    trials.extend(revocation::trials(&cluster));
    trials.extend(ledger::trials(&cluster));
    trials.extend(ledger_model::trials(&cluster));
    trials.extend(crl_split::trials(&cluster));
    trials.extend(crl_quota::trials(&cluster));
    trials.extend(ca_rotation::trials(&cluster));
    trials.extend(live_sessions::trials(&cluster));
    trials.extend(tenancy::trials(&cluster));
    trials.extend(minimums::trials(&cluster));
    trials.extend(bad_input::trials(&cluster));
    trials.extend(tls_providers::trials(&cluster));
    trials.extend(events::trials(&cluster));
    trials.extend(webhook::trials(&cluster));
    trials.extend(faults::trials(&cluster));
    trials.extend(leader_election::trials(&cluster));
    trials.extend(leader_fencing::trials(&cluster));
    trials.extend(chart::trials(&cluster));
    let conclusion = libtest_mimic::run(&arguments, trials);
    drop(cluster);
    conclusion.exit_code()
}
