use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("shim") {
        std::process::exit(berth::runtime::shim::main(std::path::Path::new(&args[2])));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let layout = berth::runtime::Layout::new(PathBuf::from("/tmp/bt/root"), PathBuf::from("/tmp/bt/run"));
        let sealed = berth::runtime::sealed::SealedExe::new().unwrap();
        let runtime = berth::runtime::Runtime::new(layout, sealed.path());
        let cfg = berth::runtime::ContainerConfig {
            id: args[1].clone(),
            hostname: args[1].clone(),
            args: args[2..].to_vec(),
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            lower_dirs: vec![PathBuf::from("/tmp/bb")],
            limits: berth::runtime::Limits {
                memory_bytes: Some(32 << 20),
                pids: Some(20),
                cpus: Some(0.5),
                cpu_shares: Some(512),
            },
            ..Default::default()
        };
        let t = std::time::Instant::now();
        let started = runtime.start(&cfg).await;
        println!("start: {:?} in {:?}", started, t.elapsed());
        if let Ok(s) = started {
            let fd = berth::runtime::pidfd_open(s.record.shim_pid).unwrap();
            berth::runtime::wait_pidfd(fd).await.unwrap();
            berth::runtime::reap_shim(s.record.shim_pid);
            println!("probe: {:?} total {:?}", runtime.probe(&cfg.id), t.elapsed());
            println!(
                "{}",
                std::fs::read_to_string(runtime.layout.log_file(&cfg.id)).unwrap_or_default()
            );
        }
        if std::env::var_os("BERTH_SHIM_DEBUG").is_none() {
            runtime.remove(&cfg.id).unwrap();
        }
    });
}
