//! PKI building blocks with no Kubernetes in them: PEM decoding and private-key loading.

pub mod pem;
pub mod private_key;
