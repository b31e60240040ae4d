//! The `kube::Client` that discovery (and the DNSEndpoint publisher) talk through: the API server
//! named in the config, else the in-cluster service account, else the kubeconfig.

use kube::Client;

use crate::config::KubernetesSettings;

/// Why Kubernetes discovery cannot start. Each variant keeps the error behind it as its
/// `source`, so `{:#}` (and any source chain walker) shows the cause after the message.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// `kubernetes.api_server` is not a URI.
    #[error("bad kubernetes.api_server {url:?}")]
    Url {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    /// Neither in-cluster configuration nor a kubeconfig was found.
    #[error("no Kubernetes configuration (in-cluster or kubeconfig)")]
    Config(#[source] kube::config::InferConfigError),
    /// The configuration was found but the client could not be built from it (TLS, proxy).
    #[error("cannot build the Kubernetes client")]
    Client(#[source] kube::Error),
}

/// The client `settings` ask for.
pub async fn client(settings: &KubernetesSettings) -> Result<Client, KubeError> {
    let config = match &settings.api_server {
        Some(url) => {
            let uri = url.parse().map_err(|source| KubeError::Url {
                url: url.clone(),
                source,
            })?;
            kube::Config::new(uri)
        }
        None => kube::Config::infer().await.map_err(KubeError::Config)?,
    };
    Client::try_from(config).map_err(KubeError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_api_server_keeps_the_parse_error_as_its_source() {
        let mut settings = crate::kubernetes::test_settings();
        settings.api_server = Some("http://bad host".to_string());
        let Err(error) = client(&settings).await else {
            panic!("a space is no URI, yet a client was built");
        };
        assert!(matches!(error, KubeError::Url { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            r#"bad kubernetes.api_server "http://bad host""#
        );
        let chain = format!("{:#}", anyhow::Error::from(error));
        assert_eq!(
            chain,
            r#"bad kubernetes.api_server "http://bad host": invalid uri character"#
        );
    }
}
