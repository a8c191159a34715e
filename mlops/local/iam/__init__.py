"""Whether every AWS call a function makes is allowed by its IAM role, judged offline.

``calls`` turns a botocore call (service, operation, parameters) into the IAM requests AWS
authorizes for it, including those a service makes with the caller's credentials (KMS for S3 and
SNS, iam:PassRole for CloudFormation); the table is in ``mapping``, ``data_calls`` and
``service_calls``. ``simulator`` decides each request with a real policy evaluator
(``simulate.mjs``, on Node). ``mlops.adapters.target.observe_calls`` is the hook that sees the
calls; ``tests/support/iam_template.py`` resolves a synthesized template's roles to policies.
"""
