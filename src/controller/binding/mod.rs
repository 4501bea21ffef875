//! RolesAnywhereBindings: checked, their certificate created, their pods counted.

mod reconciler;
mod watches;

pub use reconciler::*;
pub(crate) use watches::*;
