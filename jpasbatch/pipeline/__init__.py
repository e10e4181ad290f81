"""The job pipeline: the stage registry, the job spec, the runner and the job report.

A job file names stages; :mod:`jpasbatch.pipeline.stages` states each stage once
(its section, inputs, outputs, function, upstream); the runner plans and runs them.
"""
