//! The busybox test image, built locally (no registry is reachable from CI).
//!
//! This module owns the image the end-to-end tests run: a rootfs holding the host's statically linked
//! `/bin/busybox` (Debian's busybox-static), one symlink per applet, and a minimal `/etc/passwd` and
//! `/etc/group`. It can lay that rootfs out in a directory ([`busybox_rootfs`]) or pack it as an OCI image
//! layout tarball ([`busybox_oci_archive`]) that `ctr images import` and `podman load` accept.
//!
//! The archive is deterministic: entries are sorted, owned by root and dated at the epoch, so the same
//! busybox binary always yields the same digests.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Where the busybox binary comes from on the host (Debian package busybox-static).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// `PATH` in the image config, as the official busybox image sets it.
pub const IMAGE_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";

/// One node of the rootfs. Paths are relative, without a leading `/`.
enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// The whole rootfs, keyed (and so sorted) by path: a parent always sorts before its children.
fn busybox_tree() -> Result<BTreeMap<String, Node>> {
    let busybox = fs::read(HOST_BUSYBOX).with_context(|| format!("reading {HOST_BUSYBOX} (install busybox-static)"))?;
    let out = Command::new(HOST_BUSYBOX)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {HOST_BUSYBOX} --list-full"))?;
    ensure!(out.status.success(), "{HOST_BUSYBOX} --list-full failed: {}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).context("busybox --list-full printed non-UTF-8")?;

    let mut tree = BTreeMap::new();
    for dir in ["bin", "dev", "etc", "proc", "sbin", "sys", "usr", "usr/bin", "usr/sbin", "var"] {
        tree.insert(dir.to_string(), Node::Dir { mode: 0o755 });
    }
    tree.insert("root".to_string(), Node::Dir { mode: 0o700 });
    tree.insert("tmp".to_string(), Node::Dir { mode: 0o1777 });
    tree.insert("var/tmp".to_string(), Node::Dir { mode: 0o1777 });
    tree.insert("etc/passwd".to_string(), Node::File { mode: 0o644, data: PASSWD.into() });
    tree.insert("etc/group".to_string(), Node::File { mode: 0o644, data: GROUP.into() });
    tree.insert("bin/busybox".to_string(), Node::File { mode: 0o755, data: busybox });

    for applet in listing.lines().map(str::trim) {
        // `linuxrc` sits at the top level and is of no use in a container; skip anything that is not
        // under one of the directories made above.
        let Some((parent, _)) = applet.rsplit_once('/') else { continue };
        if applet == "bin/busybox" || !matches!(tree.get(parent), Some(Node::Dir { .. })) {
            continue;
        }
        tree.insert(applet.to_string(), Node::Symlink { target: "/bin/busybox".to_string() });
    }
    ensure!(tree.contains_key("bin/sh"), "{HOST_BUSYBOX} has no sh applet");
    Ok(tree)
}

/// Populates `dir` (created if missing) with the busybox rootfs.
pub fn busybox_rootfs(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (path, node) in busybox_tree()? {
        let dest = dir.join(&path);
        match node {
            Node::Dir { mode } => {
                fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
                // set explicitly: the umask would otherwise strip the sticky bit of /tmp
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
            }
            Node::File { mode, data } => {
                fs::write(&dest, data).with_context(|| format!("writing {}", dest.display()))?;
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode))?;
            }
            Node::Symlink { target } => {
                symlink(&target, &dest).with_context(|| format!("linking {} -> {target}", dest.display()))?;
            }
        }
    }
    Ok(())
}

/// A tar header for a root-owned entry dated at the epoch.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// Packs `tree` as an uncompressed tar (an OCI layer).
fn layer_tar(tree: &BTreeMap<String, Node>) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, node) in tree {
        match node {
            Node::Dir { mode } => {
                let mut h = header(tar::EntryType::Directory, *mode, 0);
                b.append_data(&mut h, format!("{path}/"), std::io::empty())?;
            }
            Node::File { mode, data } => {
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
                b.append_data(&mut h, path, data.as_slice())?;
            }
            Node::Symlink { target } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, path, target)?;
            }
        }
    }
    Ok(b.into_inner()?)
}

fn sha256_digest(data: &[u8]) -> String {
    let sum = Sha256::digest(data);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Writes an OCI image layout tarball of the busybox image to `out`.
///
/// `name` becomes the `org.opencontainers.image.ref.name` annotation of the one manifest in `index.json`.
/// Pass a full reference (e.g. `localhost/moat-busybox:latest`): podman names the loaded image after it,
/// and `ctr images import --base-name localhost/moat-busybox` keeps it (ctr drops full references that
/// do not start with its base name).
///
/// The image is for linux on this host's architecture, with `Env` = [`IMAGE_PATH_ENV`], `Cmd` = `["sh"]`
/// and a single uncompressed layer.
pub fn busybox_oci_archive(out: &Path, name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("image name must not be empty");
    }
    let layer = layer_tar(&busybox_tree()?)?;
    // uncompressed, so the layer's diff ID is its digest
    let layer_digest = sha256_digest(&layer);

    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    let epoch = "1970-01-01T00:00:00Z";
    let config = serde_json::to_vec(&json!({
        "created": epoch,
        "architecture": arch,
        "os": "linux",
        "config": { "Env": [IMAGE_PATH_ENV], "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        "history": [{ "created": epoch, "created_by": "moat-e2e busybox_oci_archive" }],
    }))?;
    let config_digest = sha256_digest(&config);

    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))?;
    let manifest_digest = sha256_digest(&manifest);

    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": { "architecture": arch, "os": "linux" },
            "annotations": { "org.opencontainers.image.ref.name": name },
        }],
    }))?;
    let layout = serde_json::to_vec(&json!({ "imageLayoutVersion": "1.0.0" }))?;

    let mut files: Vec<(String, &[u8])> = vec![
        ("oci-layout".to_string(), &layout),
        ("index.json".to_string(), &index),
        (blob_path(&config_digest), &config),
        (blob_path(&manifest_digest), &manifest),
        (blob_path(&layer_digest), &layer),
    ];
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let mut b = tar::Builder::new(Vec::new());
    for dir in ["blobs/", "blobs/sha256/"] {
        b.append_data(&mut header(tar::EntryType::Directory, 0o755, 0), dir, std::io::empty())?;
    }
    for (path, data) in files {
        b.append_data(&mut header(tar::EntryType::Regular, 0o644, data.len() as u64), path, data)?;
    }
    let archive = b.into_inner()?;
    fs::write(out, archive).with_context(|| format!("writing {}", out.display()))
}

/// `blobs/sha256/<hex>` for a `sha256:<hex>` digest.
fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_is_deterministic_and_digests_match() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
        busybox_oci_archive(&a, "localhost/x:1").unwrap();
        busybox_oci_archive(&b, "localhost/x:1").unwrap();
        let bytes = fs::read(&a).unwrap();
        assert_eq!(bytes, fs::read(&b).unwrap(), "two builds differ");

        let mut ar = tar::Archive::new(bytes.as_slice());
        let mut blobs = BTreeMap::new();
        for entry in ar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            blobs.insert(path, data);
        }
        for (path, data) in &blobs {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                if !hex.is_empty() {
                    assert_eq!(sha256_digest(data), format!("sha256:{hex}"), "{path}");
                }
            }
        }
        let index: serde_json::Value = serde_json::from_slice(&blobs["index.json"]).unwrap();
        assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "localhost/x:1");
    }

    #[test]
    fn rootfs_has_sh_and_passwd() {
        let dir = tempfile::tempdir().unwrap();
        busybox_rootfs(dir.path()).unwrap();
        assert_eq!(fs::read_link(dir.path().join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
        assert!(fs::read_to_string(dir.path().join("etc/passwd")).unwrap().starts_with("root:"));
        let mode = fs::metadata(dir.path().join("tmp")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o1777);
    }
}
