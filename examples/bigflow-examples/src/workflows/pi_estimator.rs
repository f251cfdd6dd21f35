//! The starter's Spark example: a Monte-Carlo estimate of pi, as a PySpark
//! driver (`resources/pi_estimator.py`) run by `spark-submit` on a local Spark.

use bigflow::prelude::*;
use bigflow::spark::PySparkJob;

/// One `PySparkJob` estimating pi from 2 million samples.
pub fn workflow() -> WorkflowBuilder {
    Workflow::builder("pi_estimator_pyspark")
        .depends_on_past(false)
        .jobs([PySparkJob::new("estimate_pi", "pi_estimator.py")
            .args(["2000000", "4"])
            .spark_property("spark.ui.enabled", "false")
            .with_retry_count(1)])
}
