//! Joins a container path onto its root so that the result stays inside the
//! root: `..` stops at the root and symlinks are resolved as if the root were
//! `/` (what runc's filepath-securejoin does). Used before the container runs,
//! when no process inside can race us.

use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

const MAX_SYMLINKS: usize = 255;

/// Resolves `unsafe_path` (absolute or relative to the container's `/`)
/// inside `root`. Missing trailing components are kept as they are.
pub fn join(root: &Path, unsafe_path: &Path) -> Result<PathBuf> {
    let mut todo: Vec<PathBuf> = vec![unsafe_path.to_path_buf()];
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    // Work through a stack of remaining paths: a symlink pushes its target.
    let mut pending: Vec<std::ffi::OsString> = Vec::new();
    push_components(&mut pending, &todo.pop().unwrap_or_default());
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let host = root.join(candidate.strip_prefix("/").unwrap_or(&candidate));
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::path("resolve", host, std::io::Error::from_raw_os_error(libc::ELOOP)));
                }
                let target = fs::read_link(&host).map_err(|e| Error::path("readlink", &host, e))?;
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                push_components(&mut pending, &target);
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved.strip_prefix("/").unwrap_or(&resolved)))
}

/// Pushes the normal and `..` components of `p` so that popping yields them in order.
fn push_components(stack: &mut Vec<std::ffi::OsString>, p: &Path) {
    let parts: Vec<_> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    stack.extend(parts.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn dotdot_and_symlinks_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        symlink("/", r.join("a/root")).unwrap();
        symlink("../../../../etc", r.join("a/b/up")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        assert_eq!(join(r, Path::new("/../../x")).unwrap(), r.join("x"));
        assert_eq!(join(r, Path::new("/a/root/etc")).unwrap(), r.join("etc"));
        assert_eq!(join(r, Path::new("a/b/up/passwd")).unwrap(), r.join("etc/passwd"));
        assert!(join(r, Path::new("/loop")).is_err());
    }
}
