//! Test fixture: build v1 of the hot-swap fixture (`version` answers
//! "swap-v1"). Builds v2 and init-error share its source.

const BUILD: &str = "v1";
const INIT_ERROR: Option<&str> = None;

include!("fixture.rs");
