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
        compression: Compression::default(),
    }
}

/// The uncompressed tar of a layer, by its media type.
fn decompress(layer: &Layer) -> Vec<u8> {
    use std::io::Read;
    let mut tar = Vec::new();
    match layer.media_type.as_str() {
        layer::MEDIA_LAYER_ZSTD => {
            assert_eq!(&layer.blob[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
            tar = zstd::decode_all(layer.blob.as_slice()).unwrap();
        }
        layer::MEDIA_LAYER_GZIP => {
            assert_eq!(&layer.blob[..2], &[0x1f, 0x8b], "gzip magic");
            flate2::read::GzDecoder::new(layer.blob.as_slice())
                .read_to_end(&mut tar)
                .unwrap();
        }
        other => panic!("unexpected media type {other}"),
    }
    tar
}

#[test]
fn layers_are_zstd_by_default_and_decompress_to_their_diff_ids() {
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(&spec(dir.path())).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    for (layer, described) in image
        .layers
        .iter()
        .zip(manifest["layers"].as_array().unwrap())
    {
        assert_eq!(layer.media_type, layer::MEDIA_LAYER_ZSTD);
        assert_eq!(described["mediaType"], layer::MEDIA_LAYER_ZSTD);
        assert_eq!(sha256(&decompress(layer)), layer.diff_id);
        assert_eq!(sha256(&layer.blob), layer.digest);
    }
}

#[test]
fn gzip_stays_an_option_with_the_same_contents() {
    let dir = tempfile::tempdir().unwrap();
    let zstd = build_image(&spec(dir.path())).unwrap();
    let gzip_spec = ImageSpec {
        compression: Compression::Gzip,
        ..spec(dir.path())
    };
    let gzip = build_image(&gzip_spec).unwrap();
    assert_eq!(
        gzip.digest,
        build_image(&gzip_spec).unwrap().digest,
        "gzip images are reproducible too"
    );
    assert_ne!(gzip.digest, zstd.digest);
    // The same files: same diff ids, so the same config.
    assert_eq!(gzip.config, zstd.config);
    for (g, z) in gzip.layers.iter().zip(&zstd.layers) {
        assert_eq!(g.media_type, layer::MEDIA_LAYER_GZIP);
        assert_eq!(decompress(g), decompress(z));
        assert_eq!(sha256(&decompress(g)), g.diff_id);
    }
    let manifest = oci_spec::image::ImageManifest::from_reader(gzip.manifest.as_slice()).unwrap();
    assert!(
        manifest
            .layers()
            .iter()
            .all(|l| l.media_type().to_string() == layer::MEDIA_LAYER_GZIP)
    );
    assert_eq!("gzip".parse::<Compression>().unwrap(), Compression::Gzip);
    assert_eq!(" ZSTD".parse::<Compression>().unwrap(), Compression::Zstd);
    assert!(
        "xz".parse::<Compression>()
            .unwrap_err()
            .contains("zstd or gzip")
    );
}

#[test]
fn same_inputs_same_digest_and_valid_oci_documents() {
    let dir = tempfile::tempdir().unwrap();
    let a = build_image(&spec(dir.path())).unwrap();
    let b = build_image(&spec(dir.path())).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.manifest, b.manifest);
    for (la, lb) in a.layers.iter().zip(&b.layers) {
        assert_eq!(la.blob, lb.blob, "byte-identical zstd layers");
    }
    let manifest = oci_spec::image::ImageManifest::from_reader(a.manifest.as_slice()).unwrap();
    assert_eq!(manifest.layers().len(), 2);
    assert!(
        manifest
            .layers()
            .iter()
            .all(|l| l.media_type().to_string() == layer::MEDIA_LAYER_ZSTD)
    );
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
    let tar = decompress(app);
    let mut archive = tar::Archive::new(tar.as_slice());
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
