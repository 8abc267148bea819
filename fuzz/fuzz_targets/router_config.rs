//! Arbitrary text into the router config parser: an error or a router, never a
//! panic; a router that loads also routes (its sample queries) without one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_router::{RouteRequest, Router};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Router::from_toml(text, "fuzz/1.toml") {
        Ok(router) => {
            for query in ["미세먼지 정보 알려줘", "weather in Seoul", "", text] {
                let _ = router.route_explained(&RouteRequest::new(query));
            }
            let _ = router.lints();
        }
        Err(e) => {
            // The message names the file, never panics to format.
            let _ = e.to_string();
        }
    }
});
