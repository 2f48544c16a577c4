//! What the REST tests need besides an HTTP client: the contract's RPCs, and the OpenAPI
//! validator (openapi-spec-validator from pip, installed when missing).

use std::process::Command;

use prost::Message;

/// How many RPCs the service `full_name` (`identity.v1.LoginService`) has.
pub fn rpcs_of(full_name: &str) -> usize {
    let set = prost_types::FileDescriptorSet::decode(identityd::grpc::FILE_DESCRIPTOR_SET).expect("descriptor set");
    set.file
        .iter()
        .flat_map(|file| {
            file.service
                .iter()
                .filter(move |s| format!("{}.{}", file.package(), s.name()) == full_name)
        })
        .map(|s| s.method.len())
        .sum()
}

fn validator_present() -> bool {
    Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Validates an OpenAPI document with openapi-spec-validator, installing it with pip if needed.
pub fn validate_openapi(document: &str) {
    if !validator_present() {
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "openapi-spec-validator"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed && validator_present(),
            "openapi-spec-validator is needed: python3 -m pip install openapi-spec-validator"
        );
    }
    let dir = std::env::temp_dir().join(format!("identityd-openapi-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let path = dir.join("openapi.json");
    std::fs::write(&path, document).expect("write the document");
    let output = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("run openapi-spec-validator");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "the OpenAPI document does not validate:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
