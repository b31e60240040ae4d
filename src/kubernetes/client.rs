//! The `kube::Client` that discovery (and the DNSEndpoint publisher) talk through: the API server
//! named in the config, else the in-cluster service account, else the kubeconfig.

use kube::Client;

use crate::config::KubernetesSettings;

/// Why Kubernetes discovery cannot start.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("bad kubernetes.api_server {0:?}: {1}")]
    Url(String, String),
    #[error("no Kubernetes configuration (in-cluster or kubeconfig): {0}")]
    Config(String),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(String),
}

/// The client `settings` ask for.
pub async fn client(settings: &KubernetesSettings) -> Result<Client, KubeError> {
    let config = match &settings.api_server {
        Some(url) => {
            let uri = url
                .parse()
                .map_err(|e: http::uri::InvalidUri| KubeError::Url(url.clone(), e.to_string()))?;
            kube::Config::new(uri)
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| KubeError::Client(e.to_string()))
}
