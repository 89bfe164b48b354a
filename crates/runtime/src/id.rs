//! Container ids: the characters runc allows, and never a path.

use crate::{Error, Result};

/// Checks an id the way runc does (`^[\w+-\.]+$`, not "." or ".."), so that
/// it is always a single path component under the state root.
pub fn validate(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.');
    if id.is_empty() {
        return Err(Error::Invalid("container id cannot be empty".into()));
    }
    if id == "." || id == ".." || !id.chars().all(ok_char) {
        return Err(Error::Invalid(format!("invalid container id format: {id:?}")));
    }
    if id.len() > 1024 {
        return Err(Error::Invalid("container id is longer than 1024 characters".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_runc_ids_and_rejects_paths() {
        for ok in ["abc", "a.b-c_d+e", "0123456789abcdef"] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a b", "x\0"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }
}
