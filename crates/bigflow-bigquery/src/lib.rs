//! BigQuery for BigFlow workflows: the `Dataset` API over two backends, an
//! embedded local warehouse (DataFusion over Parquet) and BigQuery itself.
