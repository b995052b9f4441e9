//! Test fixture: a build of the hot-swap fixture whose `init` fails.

const BUILD: &str = "init-error";
const INIT_ERROR: Option<&str> = Some("the fixture's init refuses to start");

include!("../../swap-v1/src/fixture.rs");
