//! `/healthz` and `/readyz` on each backend.

use coursegate_testkit::{each_backend, TestApp};

each_backend! {
    async fn health_and_readiness(backend) {
        let app = TestApp::spawn_on(backend).await;
        let res = app.get("/healthz").await;
        assert_eq!(res.status(), 200);
        let h: serde_json::Value = res.json().await.unwrap();
        assert_eq!(h["status"], "ok");

        let res = app.get("/readyz").await;
        assert_eq!(res.status(), 200);
        let r: serde_json::Value = res.json().await.unwrap();
        assert_eq!(r["status"], "ready");
        assert_eq!(r["database"], app.backend_name());
    }
}
