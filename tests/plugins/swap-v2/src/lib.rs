//! Test fixture: build v2 of the hot-swap fixture (`version` answers
//! "swap-v2").

const BUILD: &str = "v2";
const INIT_ERROR: Option<&str> = None;

include!("../../swap-v1/src/fixture.rs");
