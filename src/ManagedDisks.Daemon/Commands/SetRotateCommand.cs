using System.CommandLine;
using ManagedDisks.Daemon.Admin;
using ManagedDisks.Daemon.Hosting;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Audit;

namespace ManagedDisks.Daemon.Commands;

/// <summary>
/// <c>managed-disks set rotate NAME</c>: makes a new version of the set's key in its store, then
/// has the running daemon re-wrap the DEK of every disk and snapshot in the set with it. Data and
/// clients are untouched. Without a running daemon, the re-wrap happens when it next starts.
/// </summary>
internal static class SetRotateCommand
{
    public static Command Build(Option<string?> configOption)
    {
        var name = new Argument<string>("NAME") { Description = "The encryption set whose key gets a new version" };
        var command = new Command("rotate", "Add a version to the set's key and re-wrap every DEK in the set with it, online") { name };
        command.SetAction(parse => RunAsync(parse.GetValue(configOption), parse.GetValue(name)!));
        return command;
    }

    private static async Task<int> RunAsync(string? configPath, string name)
    {
        if (CommandSettings.Load(configPath) is not { } settings) return 2;
        var set = settings.EncryptionSets.FirstOrDefault(s => s.Name == name);
        if (set is null)
        {
            await Console.Error.WriteLineAsync($"managed-disks: no encryption set named '{name}' in {settings.Source}");
            return 1;
        }
        if (set.KeyVersion is not null)
        {
            await Console.Error.WriteLineAsync($"managed-disks: set '{name}' pins key_version {set.KeyVersion}; a new version would not be used. " +
                                               "Remove key_version (the set then follows the newest) or change it, and restart the daemon");
            return 1;
        }

        var record = new AuditRecord("admin:" + Environment.UserName, "key.rotate", "ok", set.KeyStore, set.Key, Detail: $"set rotate {name}");
        string version;
        try
        {
            using var store = KeyStoreFactory.Open(settings.KeyStores.First(k => k.Name == set.KeyStore));
            version = KeyRotation.AddVersion(store, set.Key).LatestVersion;
        }
        catch (KeyStoreException e)
        {
            AuditLog.Open(settings.AuditLog).Append(record with { Result = $"error: {e.Message}" });
            await Console.Error.WriteLineAsync($"managed-disks: {e.Message}");
            return 1;
        }
        AuditLog.Open(settings.AuditLog).Append(record with { KeyVersion = version });
        Console.WriteLine($"key {set.KeyStore}/{set.Key}: version {version} is now the newest");

        using var client = new AdminClient(settings.AdminSocket);
        try
        {
            var done = await client.SendAsync<List<Rewrapped>>(HttpMethod.Post, $"v1/sets/{Uri.EscapeDataString(name)}/rewrap");
            foreach (var item in done) Console.WriteLine($"{item.Kind} {item.Name}: re-wrapped from version {item.From} to {item.To}");
            Console.WriteLine($"set {name}: {done.Count} DEK(s) re-wrapped; data and clients untouched");
            return 0;
        }
        catch (AdminClientException e)
        {
            await Console.Error.WriteLineAsync($"managed-disks: {e.Message}; the disks of set {name} are re-wrapped with the new version when the daemon starts");
            return 1;
        }
    }
}
