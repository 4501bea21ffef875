//! An Issuer's CA: loading it (and creating it the first time), and never swapping it out from
//! under certificates it still vouches for.

mod continuity;
mod load;

pub use continuity::*;
pub use load::*;
