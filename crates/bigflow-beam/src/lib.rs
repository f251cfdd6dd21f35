//! Apache Beam pipelines written in Rust: the Beam model's `Pipeline` and
//! transforms, an embedded DirectRunner, pipeline options and `BeamJob`.
