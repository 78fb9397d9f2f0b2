using System.CommandLine;
using System.Text.Json;
using ManagedDisks.Daemon.Admin;
using ManagedDisks.Daemon.Configuration;

namespace ManagedDisks.Daemon.Commands;

/// <summary>Commands that act on the running daemon through its admin API.</summary>
internal static class AdminCommands
{
    /// <summary>Adds <c>disk list</c>, <c>disk create</c> and <c>disk move</c> to the <c>disk</c> command.</summary>
    public static void AddDiskCommands(Command disk, Option<string?> configOption)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts" };
        var list = new Command("list", "List the disks the running daemon serves, with their keys and connections") { json };
        list.SetAction(parse => Call(parse.GetValue(configOption), async client =>
        {
            var disks = await client.SendAsync<List<DiskView>>(HttpMethod.Get, "v1/disks");
            if (parse.GetValue(json)) Print(disks);
            else foreach (var d in disks)
                Console.WriteLine($"{d.Name,-16} {Units.FormatSize(d.Size),10}  sector {d.SectorSize,4}  key {d.KeyStore}/{d.Key}@{d.KeyVersion}  set {d.EncryptionSet ?? "(platform key)"}  {d.Connections} connection(s)");
        }));

        var name = new Argument<string>("NAME") { Description = "The new disk's name (its NBD export name)" };
        var size = new Option<string?>("--size") { Description = "Size, e.g. 10G (not with --from)" };
        var from = new Option<string?>("--from") { Description = "Make the disk from this snapshot (same data; its set unless --encryption-set)" };
        var sectorSize = new Option<int>("--sector-size") { Description = "Encryption unit: 4096 (default) or 512", DefaultValueFactory = _ => 4096 };
        var set = new Option<string?>("--encryption-set") { Description = "Wrap the DEK with this set's key (default: the platform key)" };
        var description = new Option<string?>("--description") { Description = "Shown by nbdinfo --list" };
        var create = new Command("create", "Create a disk in the running daemon, empty or from a snapshot, and serve it at once (kept across restarts)")
            { name, size, from, sectorSize, set, description };
        create.SetAction(parse =>
        {
            if (parse.GetValue(size) is null == parse.GetValue(from) is null)
            {
                Console.Error.WriteLine("managed-disks: give exactly one of --size SIZE or --from SNAPSHOT");
                return Task.FromResult(1);
            }
            return Call(parse.GetValue(configOption), async client =>
                Print(await client.SendAsync<DiskView>(HttpMethod.Post, "v1/disks",
                    new CreateDiskRequest(parse.GetValue(name)!, parse.GetValue(size), parse.GetValue(sectorSize), parse.GetValue(set), parse.GetValue(description), parse.GetValue(from)))));
        });

        var snapshotDisk = new Argument<string>("NAME") { Description = "The disk to copy" };
        var snapshotName = new Option<string>("--name") { Description = "The snapshot's name", Required = true };
        var snapshot = new Command("snapshot", "Take a point-in-time copy of a served disk (sparse; a reflink where the file system has it)") { snapshotDisk, snapshotName };
        snapshot.SetAction(parse => Call(parse.GetValue(configOption), async client =>
            Print(await client.SendAsync<JsonElement>(HttpMethod.Post, $"v1/disks/{Uri.EscapeDataString(parse.GetValue(snapshotDisk)!)}/snapshots",
                new SnapshotRequest(parse.GetValue(snapshotName)!)))));
        var snapshots = new Command("snapshots", "List the snapshots (JSON)");
        snapshots.SetAction(parse => Call(parse.GetValue(configOption), async client =>
            Print(await client.SendAsync<JsonElement>(HttpMethod.Get, "v1/snapshots"))));

        var moveName = new Argument<string>("NAME") { Description = "The disk to move" };
        var target = new Option<string?>("--encryption-set") { Description = "The set whose key will wrap the DEK" };
        var platform = new Option<bool>("--platform-key") { Description = "Go back to the platform key" };
        var move = new Command("move", "Re-wrap a served disk's DEK for another encryption set; data and clients are untouched") { moveName, target, platform };
        move.SetAction(parse =>
        {
            if (parse.GetValue(target) is null == !parse.GetValue(platform))
            {
                Console.Error.WriteLine("managed-disks: give exactly one of --encryption-set SET or --platform-key");
                return Task.FromResult(1);
            }
            return Call(parse.GetValue(configOption), async client =>
                Print(await client.SendAsync<DiskView>(HttpMethod.Put, $"v1/disks/{Uri.EscapeDataString(parse.GetValue(moveName)!)}/encryption-set",
                    new MoveDiskRequest(parse.GetValue(target)))));
        });

        var detachName = new Argument<string>("NAME") { Description = "The disk to detach" };
        var detach = new Command("detach", "Stop serving a disk: its clients are disconnected and its DEK wiped from memory; kept across restarts") { detachName };
        detach.SetAction(parse => Call(parse.GetValue(configOption), async client =>
            Print(await client.SendAsync<DiskView>(HttpMethod.Post, $"v1/disks/{Uri.EscapeDataString(parse.GetValue(detachName)!)}/detach"))));

        var attachName = new Argument<string>("NAME") { Description = "The disk to serve again" };
        var attach = new Command("attach", "Serve a detached disk again (its key must be usable)") { attachName };
        attach.SetAction(parse => Call(parse.GetValue(configOption), async client =>
            Print(await client.SendAsync<DiskView>(HttpMethod.Post, $"v1/disks/{Uri.EscapeDataString(parse.GetValue(attachName)!)}/attach"))));

        disk.Subcommands.Add(list);
        disk.Subcommands.Add(detach);
        disk.Subcommands.Add(snapshot);
        disk.Subcommands.Add(snapshots);
        disk.Subcommands.Add(attach);
        disk.Subcommands.Add(create);
        disk.Subcommands.Add(move);
    }

    public static Command Connections(Option<string?> configOption)
    {
        var command = new Command("connections", "List the NBD clients connected to the running daemon (JSON)");
        command.SetAction(parse => Call(parse.GetValue(configOption), async client =>
            Print(await client.SendAsync<List<ConnectionView>>(HttpMethod.Get, "v1/connections"))));
        return command;
    }

    public static Command Status(Option<string?> configOption)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts" };
        var command = new Command("status", "What the running daemon serves: disks with bytes moved, clients, key states") { json };
        command.SetAction(parse => Call(parse.GetValue(configOption), async client =>
        {
            var status = await client.SendAsync<StatusView>(HttpMethod.Get, "v1/status");
            if (parse.GetValue(json))
            {
                Print(status);
                return;
            }
            Console.WriteLine($"{"DISK",-16} {"STATE",-15} {"SIZE",10} {"KEY",-32} {"KEY STATE",-11} {"CLIENTS",7} {"READ",10} {"WRITTEN",10} {"ERRORS",6}");
            foreach (var d in status.Disks)
            {
                string key = d.KeyStore.Length == 0 ? "-" : $"{d.KeyStore}/{d.Key}@{d.KeyVersion}";
                Console.WriteLine($"{d.Name,-16} {d.State,-15} {Units.FormatSize(d.Size),10} {key,-32} {d.KeyState,-11} {d.Connections,7} {Units.FormatSize(d.BytesRead),10} {Units.FormatSize(d.BytesWritten),10} {d.Errors,6}");
                if (d.Deadline is { } deadline)
                    Console.WriteLine($"  {(d.State == "shut-down" ? "shut down at" : "shuts down at")} {deadline:u}: {d.Reason}");
                else if (d.Reason is { } reason)
                    Console.WriteLine($"  {reason}");
            }
            foreach (var k in status.Keys)
                Console.WriteLine($"set {k.EncryptionSet}: key {k.KeyStore}/{k.Key} {k.KeyState}, identity {k.Identity} granted {k.GrantedOperations}");
            Console.WriteLine($"{status.Connections.Count} client connection(s)");
        }));
        return command;
    }

    public static Command Keys(Option<string?> configOption)
    {
        var command = new Command("keys", "Show the state of every encryption set's key as the running daemon sees it (JSON)");
        command.SetAction(parse => Call(parse.GetValue(configOption), async client =>
            Print(await client.SendAsync<List<KeyStatusView>>(HttpMethod.Get, "v1/keys"))));
        return command;
    }

    internal static void Print<T>(T value) => Console.WriteLine(JsonSerializer.Serialize(value, AdminJson.Options));

    internal static async Task<int> Call(string? configPath, Func<AdminClient, Task> action)
    {
        if (CommandSettings.Load(configPath) is not { } settings) return 2;
        using var client = new AdminClient(settings.AdminSocket);
        try
        {
            await action(client);
            return 0;
        }
        catch (AdminClientException e)
        {
            await Console.Error.WriteLineAsync($"managed-disks: {e.Message}");
            return 1;
        }
    }
}
