using System.CommandLine;
using ManagedDisks.Daemon.Commands;

var configOption = new Option<string?>("--config", "-c")
{
    Description = "Path of disks.toml; without it the daemon runs on its embedded default in the working directory",
};

var serve = new Command("serve", "Run the daemon in the foreground (systemd runs exactly this)") { configOption };
serve.SetAction((parse, cancellationToken) => ServeCommand.RunAsync(parse.GetValue(configOption), cancellationToken));

var root = new RootCommand("managed-disks: encrypted virtual disks served over NBD") { serve };
return await root.Parse(args).InvokeAsync();
