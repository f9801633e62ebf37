-- The audit log: every change above, who made it, and when.
SELECT id, actor, action, object, details FROM privacy.audit_log ORDER BY id;
