"""Beam's word count on PySpark (DataFrame API): tokens matching [\\w']+,
`word: count` lines. Usage: beam_wordcount_spark.py INPUT OUTPUT_DIR MASTER"""
import sys

from pyspark.sql import SparkSession, functions as F

spark = (SparkSession.builder.master(sys.argv[3]).appName("wordcount")
         .config("spark.ui.enabled", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
words = spark.read.text(sys.argv[1]).select(
    F.explode(F.regexp_extract_all("value", F.lit(r"([\w']+)"), 1)).alias("word"))
counts = words.groupBy("word").count()
counts.select(F.concat_ws(": ", "word", F.col("count").cast("string"))).write.mode("overwrite").text(sys.argv[2])
spark.stop()
