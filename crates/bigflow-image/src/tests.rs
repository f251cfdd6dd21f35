//! Reproducibility and format tests of image assembly.

use super::*;

fn spec(dir: &Path) -> ImageSpec {
    let resources = dir.join("resources");
    std::fs::create_dir_all(resources.join("sql")).unwrap();
    std::fs::write(resources.join("sql/q.sql"), "select 1").unwrap();
    std::fs::write(resources.join("example.txt"), "hello").unwrap();
    ImageSpec {
        name: "demo".into(),
        // Any dynamically linked binary of this machine will do.
        binary: std::env::current_exe().unwrap(),
        binary_name: "demo".into(),
        resources: Some(resources),
        ca_certificates: None,
        version: "0.1".into(),
        revision: "abc".into(),
        created: "2020-01-01T00:00:00Z".into(),
        base: None,
    }
}

#[test]
fn same_inputs_same_digest_and_valid_oci_documents() {
    let dir = tempfile::tempdir().unwrap();
    let a = build_image(&spec(dir.path())).unwrap();
    let b = build_image(&spec(dir.path())).unwrap();
    assert_eq!(a.digest, b.digest);
    let manifest = oci_spec::image::ImageManifest::from_reader(a.manifest.as_slice()).unwrap();
    assert_eq!(manifest.layers().len(), 2);
    assert_eq!(manifest.config().digest().to_string(), a.config_digest());
    let config = oci_spec::image::ImageConfiguration::from_reader(a.config.as_slice()).unwrap();
    assert_eq!(
        config
            .config()
            .as_ref()
            .unwrap()
            .entrypoint()
            .as_ref()
            .unwrap(),
        &vec!["/app/bin/demo".to_string()]
    );
    assert_eq!(config.rootfs().diff_ids().len(), 2);

    let mut other = spec(dir.path());
    other.version = "0.2".into();
    assert_ne!(
        build_image(&other).unwrap().digest,
        a.digest,
        "the version is a label"
    );
}

#[test]
fn archive_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(&spec(dir.path())).unwrap();
    let (p1, p2) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
    export_archive(&image, "0.1", Some("gcr.io/p/demo:0.1"), &p1).unwrap();
    export_archive(&image, "0.1", Some("gcr.io/p/demo:0.1"), &p2).unwrap();
    assert_eq!(std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap());
}

#[test]
fn an_archive_replaces_only_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(&spec(dir.path())).unwrap();
    let taken = dir.path().join("image-0.1.tar");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("keep"), "user data").unwrap();
    let e = export_archive(&image, "0.1", None, &taken)
        .unwrap_err()
        .to_string();
    assert!(e.contains("it is not a regular file"), "{e}");
    assert_eq!(
        std::fs::read_to_string(taken.join("keep")).unwrap(),
        "user data"
    );
    // An earlier archive is replaced.
    let file = dir.path().join("image-0.2.tar");
    std::fs::write(&file, "old archive").unwrap();
    export_archive(&image, "0.2", None, &file).unwrap();
    assert_ne!(std::fs::read(&file).unwrap(), b"old archive");
}

#[test]
fn the_application_layer_links_beams_boot_program_to_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(&spec(dir.path())).unwrap();
    let app = image.layers.last().unwrap();
    let tar = flate2::read::GzDecoder::new(app.blob.as_slice());
    let mut archive = tar::Archive::new(tar);
    let boot = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy() == BEAM_BOOT.trim_start_matches('/'))
        .expect("opt/apache/beam/boot in the application layer");
    assert_eq!(boot.header().entry_type(), tar::EntryType::Symlink);
    assert_eq!(
        boot.link_name().unwrap().unwrap().to_string_lossy(),
        "/app/bin/demo"
    );
}
