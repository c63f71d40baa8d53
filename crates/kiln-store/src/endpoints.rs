//! Endpoints and their deployments.

use crate::model::{DeploymentRecord, EndpointRecord};
use crate::sql::Sql;
use crate::{Result, Store, unique_as_exists};

const ENDPOINT_COLUMNS: &str = "name, kind, document, created_at, updated_at";
type EndpointRow = (String, String, String, i64, i64);

fn endpoint(r: EndpointRow) -> EndpointRecord {
    EndpointRecord { name: r.0, kind: r.1, document: r.2, created_at: r.3, updated_at: r.4 }
}

const DEPLOYMENT_COLUMNS: &str = "endpoint, name, document, state, message, created_at, updated_at";
type DeploymentRow = (String, String, String, String, Option<String>, i64, i64);

fn deployment(r: DeploymentRow) -> DeploymentRecord {
    DeploymentRecord {
        endpoint: r.0,
        name: r.1,
        document: r.2,
        state: r.3,
        message: r.4,
        created_at: r.5,
        updated_at: r.6,
    }
}

impl Store {
    /// Records a new endpoint; a taken name is `AlreadyExists`.
    pub async fn insert_endpoint(&self, e: &EndpointRecord) -> Result<()> {
        let mut sql = Sql::new(self.dialect, &format!("INSERT INTO endpoints ({ENDPOINT_COLUMNS}) VALUES ("));
        sql.bind(&e.name).push(", ").bind(&e.kind).push(", ").bind(&e.document).push(", ");
        sql.bind(e.created_at).push(", ").bind(e.updated_at).push(")");
        sql.execute(&self.writer).await.map_err(unique_as_exists(|| format!("endpoint '{}'", e.name)))?;
        Ok(())
    }

    /// Replaces an endpoint's document. Returns whether it exists.
    pub async fn update_endpoint(&self, name: &str, document: &str, updated_at: i64) -> Result<bool> {
        let mut sql = Sql::new(self.dialect, "UPDATE endpoints SET document = ");
        sql.bind(document).push(", updated_at = ").bind(updated_at).push(" WHERE name = ").bind(name);
        Ok(sql.execute(&self.writer).await? > 0)
    }

    pub async fn get_endpoint(&self, name: &str) -> Result<Option<EndpointRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE name = "));
        sql.bind(name);
        Ok(sql.fetch_optional::<EndpointRow, _>(&self.reader).await?.map(endpoint))
    }

    /// Endpoints by name, of one kind or of all.
    pub async fn list_endpoints(&self, kind: Option<&str>) -> Result<Vec<EndpointRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints"));
        if let Some(k) = kind {
            sql.push(" WHERE kind = ").bind(k);
        }
        sql.push(" ORDER BY name");
        Ok(sql.fetch_all::<EndpointRow, _>(&self.reader).await?.into_iter().map(endpoint).collect())
    }

    /// Deletes an endpoint with its deployments. Returns whether it existed.
    pub async fn delete_endpoint(&self, name: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let mut deps = Sql::new(self.dialect, "DELETE FROM deployments WHERE endpoint = ");
        deps.bind(name);
        deps.execute(&mut *tx).await?;
        let mut sql = Sql::new(self.dialect, "DELETE FROM endpoints WHERE name = ");
        sql.bind(name);
        let n = sql.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Writes a deployment: a new row, or the document and state of the existing one.
    /// Returns whether it was new.
    pub async fn put_deployment(&self, d: &DeploymentRecord) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let mut update = Sql::new(self.dialect, "UPDATE deployments SET document = ");
        update.bind(&d.document).push(", state = ").bind(&d.state).push(", message = ").bind(d.message.clone());
        update.push(", updated_at = ").bind(d.updated_at);
        update.push(" WHERE endpoint = ").bind(&d.endpoint).push(" AND name = ").bind(&d.name);
        if update.execute(&mut *tx).await? > 0 {
            tx.commit().await?;
            return Ok(false);
        }
        let mut insert = Sql::new(self.dialect, &format!("INSERT INTO deployments ({DEPLOYMENT_COLUMNS}) VALUES ("));
        insert.bind(&d.endpoint).push(", ").bind(&d.name).push(", ").bind(&d.document).push(", ").bind(&d.state);
        insert.push(", ").bind(d.message.clone()).push(", ").bind(d.created_at).push(", ").bind(d.updated_at).push(")");
        insert.execute(&mut *tx).await.map_err(unique_as_exists(|| format!("deployment '{}'", d.name)))?;
        tx.commit().await?;
        Ok(true)
    }

    /// Sets a deployment's state. Returns whether it exists.
    pub async fn set_deployment_state(
        &self,
        endpoint: &str,
        name: &str,
        state: &str,
        message: Option<&str>,
        updated_at: i64,
    ) -> Result<bool> {
        let mut sql = Sql::new(self.dialect, "UPDATE deployments SET state = ");
        sql.bind(state).push(", message = ").bind(message.map(str::to_string)).push(", updated_at = ").bind(updated_at);
        sql.push(" WHERE endpoint = ").bind(endpoint).push(" AND name = ").bind(name);
        Ok(sql.execute(&self.writer).await? > 0)
    }

    pub async fn get_deployment(&self, endpoint: &str, name: &str) -> Result<Option<DeploymentRecord>> {
        let mut sql =
            Sql::new(self.dialect, &format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE endpoint = "));
        sql.bind(endpoint).push(" AND name = ").bind(name);
        Ok(sql.fetch_optional::<DeploymentRow, _>(&self.reader).await?.map(deployment))
    }

    /// Deployments of one endpoint (or of all), by endpoint and name.
    pub async fn list_deployments(&self, endpoint: Option<&str>) -> Result<Vec<DeploymentRecord>> {
        let mut sql = Sql::new(self.dialect, &format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments"));
        if let Some(e) = endpoint {
            sql.push(" WHERE endpoint = ").bind(e);
        }
        sql.push(" ORDER BY endpoint, name");
        Ok(sql.fetch_all::<DeploymentRow, _>(&self.reader).await?.into_iter().map(deployment).collect())
    }

    pub async fn delete_deployment(&self, endpoint: &str, name: &str) -> Result<bool> {
        let mut sql = Sql::new(self.dialect, "DELETE FROM deployments WHERE endpoint = ");
        sql.bind(endpoint).push(" AND name = ").bind(name);
        Ok(sql.execute(&self.writer).await? > 0)
    }
}
