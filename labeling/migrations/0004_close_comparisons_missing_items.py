"""A comparison left with fewer than two items (an item deleted in the admin, say) is
closed, and its open leases released, by a trigger on labeling_comparisonitem, so that no
writer can leave a 0- or 1-item comparison to be served or judged."""

from django.db import migrations

CLOSE_SHORT = """
CREATE FUNCTION labeling_close_short_comparison() RETURNS trigger AS $$
BEGIN
    IF (SELECT count(*) FROM labeling_comparisonitem s
        WHERE s.comparison_id = OLD.comparison_id) < 2 THEN
        UPDATE labeling_comparison SET status = 'closed'
        WHERE id = OLD.comparison_id AND status <> 'closed';
        UPDATE labeling_assignment SET status = 'released'
        WHERE comparison_id = OLD.comparison_id AND status = 'open';
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER labeling_comparisonitem_close_short
AFTER DELETE ON labeling_comparisonitem
FOR EACH ROW EXECUTE FUNCTION labeling_close_short_comparison();

UPDATE labeling_comparison c SET status = 'closed'
WHERE status <> 'closed'
  AND (SELECT count(*) FROM labeling_comparisonitem s WHERE s.comparison_id = c.id) < 2;
"""

DROP = """
DROP TRIGGER labeling_comparisonitem_close_short ON labeling_comparisonitem;
DROP FUNCTION labeling_close_short_comparison();
"""


class Migration(migrations.Migration):
    dependencies = [("labeling", "0003_comparison_open_leases")]

    operations = [migrations.RunSQL(CLOSE_SHORT, DROP)]
