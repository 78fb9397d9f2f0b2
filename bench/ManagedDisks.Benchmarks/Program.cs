using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/ManagedDisks.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
