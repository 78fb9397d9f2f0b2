using System.CommandLine;
using ManagedDisks.Daemon.Commands;

var configOption = new Option<string?>("--config", "-c")
{
    Description = "Path of disks.toml; without it the embedded default in the working directory",
    Recursive = true,
};
var jsonOption = new Option<bool>("--json") { Description = "Print JSON for scripts" };

var serve = new Command("serve", "Run the daemon in the foreground (systemd runs exactly this)");
serve.SetAction((parse, cancellationToken) => ServeCommand.RunAsync(parse.GetValue(configOption), cancellationToken));

var diskName = new Argument<string>("NAME") { Description = "The disk's name ([[disk]] name)" };
var diskShow = new Command("show", "Print a disk's metadata from its header; works whether or not the daemon runs") { diskName, jsonOption };
diskShow.SetAction(parse => DiskShowCommand.RunAsync(parse.GetValue(diskName)!, parse.GetValue(configOption), parse.GetValue(jsonOption)));
var disk = new Command("disk", "Inspect and manage disks") { diskShow };
AdminCommands.AddDiskCommands(disk, configOption);
disk.Subcommands.Add(RekeyCommand.Build(configOption));

var root = new RootCommand("managed-disks: encrypted virtual disks served over NBD")
{
    serve, disk, AdminCommands.Status(configOption), AdminCommands.Connections(configOption), AdminCommands.Keys(configOption), SetShowCommand.Build(configOption), VaultCommand.Build(configOption),
    HsmCommand.Build(configOption), AuditCommand.Build(configOption), ConfigShowCommand.Build(configOption), configOption,
};
return await root.Parse(args).InvokeAsync();
