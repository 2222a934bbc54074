-- History entries from polling the provider's API have no stored event.
ALTER TABLE agreement_history ALTER COLUMN event_ref DROP NOT NULL;
ALTER TABLE agreement_history ALTER COLUMN event_id DROP NOT NULL;
