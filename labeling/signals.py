"""Signals other apps listen to. The labeling app never imports them."""

from django.dispatch import Signal

# Sent after the transaction that stored a (non-skip) judgement commits.
# Arguments: project_id, project (the Project as read while judging), judgement_id.
judgement_recorded = Signal()
