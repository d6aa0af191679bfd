from spark_recs.evaluation.multieval import MultiEval as MultiEval
