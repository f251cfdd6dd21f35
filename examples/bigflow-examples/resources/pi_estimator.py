"""Monte-Carlo estimate of pi on Spark: the share of random points of the unit
square that fall inside the quarter circle, times four.

Usage: spark-submit pi_estimator.py [SAMPLES] [PARTITIONS]
"""
import random
import sys

from pyspark.sql import SparkSession


def inside(_):
    x, y = random.random(), random.random()
    return x * x + y * y < 1.0


def main():
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    partitions = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    spark = SparkSession.builder.appName("pi_estimator").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    hits = spark.sparkContext.parallelize(range(samples), partitions).filter(inside).count()
    print(f"Pi is roughly {4.0 * hits / samples:.6f}")
    spark.stop()


if __name__ == "__main__":
    main()
