"""Two triggers, so that whatever deletes a row (the admin, a shell) leaves no lease
holding a comparison nobody can judge:

- a comparison left with fewer than two items (an item deleted, say) is closed and its open
  leases released, so no 0- or 1-item comparison is served or judged;
- a member removed from a project has their open lease there released at once, instead of
  holding its comparison until the lease expires."""

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

RELEASE_ON_REMOVAL = """
CREATE FUNCTION labeling_release_removed_members_leases() RETURNS trigger AS $$
BEGIN
    UPDATE labeling_assignment SET status = 'released'
    WHERE project_id = OLD.project_id AND annotator_id = OLD.user_id AND status = 'open';
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER labeling_membership_release_leases
AFTER DELETE ON labeling_membership
FOR EACH ROW EXECUTE FUNCTION labeling_release_removed_members_leases();
"""

DROP_RELEASE = """
DROP TRIGGER labeling_membership_release_leases ON labeling_membership;
DROP FUNCTION labeling_release_removed_members_leases();
"""

DROP = """
DROP TRIGGER labeling_comparisonitem_close_short ON labeling_comparisonitem;
DROP FUNCTION labeling_close_short_comparison();
"""


class Migration(migrations.Migration):
    dependencies = [("labeling", "0003_comparison_open_leases")]

    operations = [
        migrations.RunSQL(CLOSE_SHORT, DROP),
        migrations.RunSQL(RELEASE_ON_REMOVAL, DROP_RELEASE),
    ]
