"""Response shapes of the stats endpoint: per-annotator figures and agreement."""

from __future__ import annotations

from rest_framework import serializers


class PairKappaSerializer(serializers.Serializer):
    kappa = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField(help_text="Comparisons both annotators answered.")
    ci = serializers.ListField(child=serializers.FloatField(), allow_null=True, required=False)


class AnnotatorStatsSerializer(serializers.Serializer):
    annotator = serializers.CharField()
    judgements = serializers.IntegerField()
    skips = serializers.IntegerField()
    agreement_with_majority = serializers.FloatField(allow_null=True)
    agreement_comparisons = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_judged = serializers.IntegerField(allow_null=True, help_text="null for annotators")
    cohen_kappa_with_others = PairKappaSerializer(
        allow_null=True, help_text="This annotator's pairs pooled into one table, no names."
    )


class AgreementSerializer(serializers.Serializer):
    """Inter-annotator agreement (labeling/agreement.py); null where undefined."""

    comparisons = serializers.IntegerField()
    answers = serializers.IntegerField()
    fleiss_kappa = serializers.FloatField(allow_null=True)
    fleiss_kappa_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    krippendorff_alpha = serializers.FloatField(allow_null=True)
    krippendorff_alpha_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    alpha_level = serializers.ChoiceField(choices=["nominal", "ordinal"])
    cohen_kappa = serializers.DictField(
        child=PairKappaSerializer(),
        allow_null=True,
        help_text='Per pair of annotators, keyed "name|name"; null for annotators.',
    )
    confidence = serializers.FloatField()
    resamples = serializers.IntegerField()
    pair_resamples = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    project = serializers.CharField()
    items = serializers.IntegerField()
    comparisons = serializers.IntegerField()
    comparisons_open = serializers.IntegerField()
    comparisons_complete = serializers.IntegerField()
    comparisons_closed = serializers.IntegerField()
    judgements = serializers.IntegerField()
    annotators = AnnotatorStatsSerializer(many=True)
    agreement = AgreementSerializer()
