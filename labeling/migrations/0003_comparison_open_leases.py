"""Comparison.open_leases: the number of its leases with status 'open', kept by a trigger.

The assignment query tests ``judgement_count + open_leases < overlap`` on the comparison
row itself, so it needs no count of leases per candidate, and a concurrent lease shows up
in the row that SELECT ... FOR UPDATE re-checks. A trigger (rather than code in the
services) keeps the count right whatever writes a lease: services, the admin, a shell.
"""

from django.db import migrations, models

COUNT_OPEN_LEASES = """
CREATE FUNCTION labeling_count_open_leases() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'open' AND NEW.status = 'open'
            AND OLD.comparison_id = NEW.comparison_id THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status = 'open' THEN
        UPDATE labeling_comparison SET open_leases = open_leases - 1
        WHERE id = OLD.comparison_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'open' THEN
        UPDATE labeling_comparison SET open_leases = open_leases + 1
        WHERE id = NEW.comparison_id;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER labeling_assignment_open_leases
AFTER INSERT OR DELETE OR UPDATE OF status, comparison_id ON labeling_assignment
FOR EACH ROW EXECUTE FUNCTION labeling_count_open_leases();

UPDATE labeling_comparison c SET open_leases = (
    SELECT count(*) FROM labeling_assignment a WHERE a.comparison_id = c.id AND a.status = 'open'
);
"""

DROP_COUNT = """
DROP TRIGGER labeling_assignment_open_leases ON labeling_assignment;
DROP FUNCTION labeling_count_open_leases();
"""


class Migration(migrations.Migration):
    dependencies = [("labeling", "0002_item_payload")]

    operations = [
        migrations.AddField(
            model_name="comparison",
            name="open_leases",
            field=models.PositiveIntegerField(
                default=0,
                editable=False,
                help_text="Leases with status open (expired or not); kept by a database trigger.",
            ),
        ),
        migrations.RunSQL(COUNT_OPEN_LEASES, DROP_COUNT),
    ]
