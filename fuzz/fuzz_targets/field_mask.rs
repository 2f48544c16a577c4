//! Update requests as they arrive (protobuf bytes) and their update masks: either refused, or
//! every path is one of the names the update allows.
#![no_main]

use identityd::grpc::field_mask::{TENANT_PATHS, USER_PATHS, mask_paths};
use identityd::grpc::pb::{UpdateTenantRequest, UpdateUserRequest};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = UpdateUserRequest::decode(data) {
        check(mask_paths(request.update_mask, &USER_PATHS), &USER_PATHS);
    }
    if let Ok(request) = UpdateTenantRequest::decode(data) {
        check(mask_paths(request.update_mask, &TENANT_PATHS), &TENANT_PATHS);
    }
});

fn check(paths: Result<Vec<String>, identityd::core::Error>, allowed: &[&str]) {
    if let Ok(paths) = paths {
        assert!(!paths.is_empty());
        assert!(paths.iter().all(|p| allowed.contains(&p.as_str())));
    }
}
