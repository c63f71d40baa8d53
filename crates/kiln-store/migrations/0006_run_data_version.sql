-- SQLite only (PostgreSQL has no direct read path to use it).
--
-- data_version: bumped, by the triggers below, whenever any of a run's side rows (params,
-- tags, latest metrics, dataset inputs, model inputs and outputs) is inserted, changed or
-- deleted, in the same transaction. Run reads cache a run's side rows by (run_key,
-- data_version), so a cached copy is used only while it is exactly what the database holds;
-- triggers rather than the write paths keep it right, so no writer can forget.
ALTER TABLE runs ADD COLUMN data_version BIGINT NOT NULL DEFAULT 0;

CREATE TRIGGER params_insert_bumps_run AFTER INSERT ON params BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key = NEW.run_key;
END;
CREATE TRIGGER params_update_bumps_run AFTER UPDATE ON params BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key IN (OLD.run_key, NEW.run_key);
END;
CREATE TRIGGER params_delete_bumps_run AFTER DELETE ON params BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key = OLD.run_key;
END;

CREATE TRIGGER tags_insert_bumps_run AFTER INSERT ON tags BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key = NEW.run_key;
END;
CREATE TRIGGER tags_update_bumps_run AFTER UPDATE ON tags BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key IN (OLD.run_key, NEW.run_key);
END;
CREATE TRIGGER tags_delete_bumps_run AFTER DELETE ON tags BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key = OLD.run_key;
END;

CREATE TRIGGER latest_metrics_insert_bumps_run AFTER INSERT ON latest_metrics BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key = NEW.run_key;
END;
CREATE TRIGGER latest_metrics_update_bumps_run AFTER UPDATE ON latest_metrics BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key IN (OLD.run_key, NEW.run_key);
END;
CREATE TRIGGER latest_metrics_delete_bumps_run AFTER DELETE ON latest_metrics BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key = OLD.run_key;
END;

CREATE TRIGGER run_dataset_inputs_insert_bumps_run AFTER INSERT ON run_dataset_inputs BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key = NEW.run_key;
END;
CREATE TRIGGER run_dataset_inputs_update_bumps_run AFTER UPDATE ON run_dataset_inputs BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key IN (OLD.run_key, NEW.run_key);
END;
CREATE TRIGGER run_dataset_inputs_delete_bumps_run AFTER DELETE ON run_dataset_inputs BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key = OLD.run_key;
END;

CREATE TRIGGER run_model_io_insert_bumps_run AFTER INSERT ON run_model_io BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key = NEW.run_key;
END;
CREATE TRIGGER run_model_io_update_bumps_run AFTER UPDATE ON run_model_io BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key IN (OLD.run_key, NEW.run_key);
END;
CREATE TRIGGER run_model_io_delete_bumps_run AFTER DELETE ON run_model_io BEGIN
    UPDATE runs SET data_version = data_version + 1 WHERE run_key = OLD.run_key;
END;
