use super::*;

const MOUNTINFO: &str = "\
25 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
35 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 30 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 25 0:36 / /mnt/with\\040space rw - cgroup2 cgroup2 rw
";

#[test]
fn finds_hybrid_mounts() {
    let m = parse_mountinfo(MOUNTINFO);
    assert_eq!(
        m.v2,
        Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()))
    );
    assert_eq!(
        m.v1_memory,
        Some((PathBuf::from("/sys/fs/cgroup/memory"), "/".to_string()))
    );
    assert_eq!(unescape_octal("/mnt/with\\040space"), "/mnt/with space");
}

#[test]
fn own_paths() {
    let text = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/user.slice\n";
    assert_eq!(
        parse_proc_cgroup(text),
        (Some("/user.slice".into()), Some("/process_api/abc".into()))
    );
    assert_eq!(parse_proc_cgroup("0::/\n"), (Some("/".into()), None));
}

#[test]
fn own_dir_inside_a_mount_with_a_root() {
    let mount = (PathBuf::from("/sys/fs/cgroup"), "/".to_string());
    assert_eq!(own_dir(&mount, "/"), PathBuf::from("/sys/fs/cgroup"));
    assert_eq!(own_dir(&mount, "/a/b"), PathBuf::from("/sys/fs/cgroup/a/b"));
    // A cgroup namespace or bind mount shows a sub-tree as the mount's root.
    let nested = (PathBuf::from("/sys/fs/cgroup"), "/ctr".to_string());
    assert_eq!(
        own_dir(&nested, "/ctr/x"),
        PathBuf::from("/sys/fs/cgroup/x")
    );
}

#[test]
fn oom_counters() {
    let v2 = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
    assert_eq!(parse_keyed(v2, "oom_kill"), Some(2));
    assert_eq!(parse_keyed(v2, "oom"), Some(3));
    let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
    assert_eq!(parse_keyed(v1, "oom_kill"), Some(1));
    assert_eq!(parse_keyed("", "oom_kill"), None);
}

#[test]
fn nothing_mounted_means_warnings_not_failure() {
    let (cg, warnings) = WorkloadCgroup::create_in(
        &CgroupMounts::default(),
        &(None, None),
        "x",
        (Some(64), false),
    );
    assert!(!cg.detects_oom());
    assert!(cg.join_files().is_empty());
    assert_eq!(cg.oom_kills(), 0);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
}

#[test]
fn pids_defaults_keep_a_reserve_for_roost() {
    assert_eq!(default_pids_max(32_768), 28_672);
    assert_eq!(default_pids_max(400), 336);
    assert_eq!(default_pids_max(100), 36);
    assert_eq!(default_pids_max(10), crate::config::limits::MIN_PIDS_MAX);
    let text = "12:pids:/user.slice/x\n4:memory:/m\n0::/\n";
    assert_eq!(
        parse_proc_cgroup_v1(text, "pids"),
        Some("/user.slice/x".into())
    );
    let m =
        parse_mountinfo("36 30 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n");
    assert_eq!(
        m.v1_pids,
        Some((PathBuf::from("/sys/fs/cgroup/pids"), "/".into()))
    );
}

#[test]
fn a_process_s_service_is_read_from_its_leaf() {
    let names = vec!["web".to_string(), "web-admin".to_string()];
    let v2 = "0::/roost-workload-0a1b2c3d/roost-workload-0a1b2c3d-web-admin\n";
    assert_eq!(service_of_cgroup(v2, &names), Some(1));
    let hybrid = "4:memory:/x/roost-workload-0a1b2c3d/roost-workload-0a1b2c3d-web\n0::/\n";
    assert_eq!(service_of_cgroup(hybrid, &names), Some(0));
    // The group alone, another name, a lookalike: no service.
    for text in [
        "0::/roost-workload-0a1b2c3d\n",
        "0::/roost-workload-0a1b2c3d-db\n",
        "0::/roost-workload-zzzzzzzz-web\n",
        "0::/\n",
    ] {
        assert_eq!(service_of_cgroup(text, &names), None, "{text}");
    }
}

#[test]
fn leaf_names_are_distinct() {
    assert_ne!(leaf_name(), leaf_name());
    assert!(leaf_name().starts_with("roost-workload-"));
}

#[test]
fn a_child_joins_v1_leaves_by_their_tasks_file_and_v2_by_cgroup_procs() {
    // `tasks`: one thread moving itself takes no global lock (and waits for no RCU grace
    // period); v2 has no such file for a domain leaf, and clones into it anyway.
    let leaf = |dir: &str, hierarchy| Leaf {
        dir: PathBuf::from(dir),
        hierarchy,
    };
    let cg = WorkloadCgroup {
        leaves: vec![
            leaf("/sys/fs/cgroup/unified/w", Hierarchy::V2),
            leaf("/sys/fs/cgroup/memory/w", Hierarchy::V1Memory),
            leaf("/sys/fs/cgroup/pids/w", Hierarchy::V1Pids),
        ],
        ..WorkloadCgroup::default()
    };
    let paths = |files: Vec<CString>| -> Vec<String> {
        files
            .into_iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        paths(cg.join_files()),
        [
            "/sys/fs/cgroup/unified/w/cgroup.procs",
            "/sys/fs/cgroup/memory/w/tasks",
            "/sys/fs/cgroup/pids/w/tasks"
        ]
    );
    assert_eq!(
        paths(cg.placement().v1_joins),
        [
            "/sys/fs/cgroup/memory/w/tasks",
            "/sys/fs/cgroup/pids/w/tasks"
        ]
    );
}
