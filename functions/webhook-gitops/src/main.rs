//! Lambda entry for webhook-gitops: the same Router and middleware as behind `hub-gateway`,
//! served by `lambda_http`. Build with `cargo lambda build --release -p webhook-gitops`.

fn main() -> Result<(), hub_runtime::lambda::Error> {
    hub_runtime::lambda::run(webhook_gitops::REGISTRATION)
}
