fn main() {
    let core = iocore::IoCore::builder().threads(2).build().unwrap();
    let n = 100_000;
    let t = std::time::Instant::now();
    let hs: Vec<_> = (0..n).map(|i| core.spawn(async move { i })).collect();
    let s: u64 = core.block_on(async { let mut s = 0u64; for h in hs { s += h.await.unwrap() as u64; } s });
    println!("sum {s} in {:?}", t.elapsed());
    let t = std::time::Instant::now();
    core.block_on(iocore::time::sleep(std::time::Duration::from_micros(300)));
    println!("sleep 300us took {:?}", t.elapsed());
    let h = core.spawn(async { iocore::time::sleep(std::time::Duration::from_micros(300)).await; 5 });
    let t = std::time::Instant::now();
    println!("{:?} took {:?}", core.block_on(h), t.elapsed());
    println!("{:?}", core.metrics());
    println!("{:?}", core.shutdown(std::time::Duration::from_millis(10)));
}
