"""Acronym definitions found in notes, and the question expansion built on them."""

from __future__ import annotations

from rag.search.glossary import Glossary


def terms(*lines: str) -> dict[str, str]:
    return Glossary.from_texts(["\n".join(lines)]).terms


def test_the_three_ways_notes_define_acronyms():
    assert terms(
        "### SQS -- Simple queueing service",
        "- SNS - Simple Notification Service",
        "- Elastic Block Store (EBS) volumes",
        "## EC2 Instance Metadata Service -- IMDS",
    ) == {
        "sqs": "Simple queueing service",
        "sns": "Simple Notification Service",
        "ebs": "Elastic Block Store",
        "imds": "Instance Metadata Service",
    }


def test_inner_capitals_and_small_words_count():
    assert terms("- Elastic MapReduce (EMR)", "- Infrastructure as Code (IaC)") == {
        "emr": "Elastic MapReduce",
        "iac": "Infrastructure as Code",
    }


def test_lookalikes_are_not_definitions():
    assert (
        terms(
            "- DVA -- Certified Developer Associate (DVA-C02)",  # an exam code, not initials
            "- DynamoDB Accelerator (DAX)",  # no X to spell
            "- IAM (see below)",
            "- Logs -- kept for 7 days",
            "- Lambda (serverless)",
        )
        == {}
    )


def test_expand_adds_the_spelling_out_and_the_acronym():
    g = Glossary({"sqs": "Simple Queue Service", "kms": "Key Management Service"})
    assert g.expand("max sqs message size") == "max sqs message size (Simple Queue Service)"
    assert g.expand("rotate key management service keys") == (
        "rotate key management service keys (KMS)"
    )
    assert g.expand("lambda timeout") == "lambda timeout"
    assert g.expand("sqs and kms") == "sqs and kms (Simple Queue Service; Key Management Service)"
