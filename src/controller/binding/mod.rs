//! RolesAnywhereBindings: checked, their certificate created, their pods counted.

mod reconciler;

pub use reconciler::*;
