using System.CommandLine;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Keys.Audit;

namespace ManagedDisks.Daemon.Commands;

/// <summary><c>managed-disks audit [--json]</c> and <c>managed-disks audit verify</c>.</summary>
internal static class AuditCommand
{
    public static Command Build(Option<string?> configOption)
    {
        var json = new Option<bool>("--json") { Description = "Print the records as JSON lines, exactly as stored" };
        var audit = new Command("audit", "Print the audit log of key operations") { json };
        audit.SetAction(parse => Print(parse.GetValue(configOption), parse.GetValue(json)));

        var verify = new Command("verify", "Check the audit log's hash chain: detects edited, inserted, deleted or removed-from-the-end records");
        verify.SetAction(parse => Verify(parse.GetValue(configOption)));
        audit.Subcommands.Add(verify);
        return audit;
    }

    private static int Print(string? configPath, bool json)
    {
        if (CommandSettings.Load(configPath) is not { } settings) return 2;
        var log = AuditLog.Open(settings.AuditLog);
        foreach (var record in log.ReadAll())
        {
            if (json)
            {
                Console.WriteLine(record.ToJsonString());
                continue;
            }
            string key = record["key"] is null ? "" : $" {record["key_store"]}/{record["key"]}{(record["key_version"] is null ? "" : $"@{record["key_version"]}")}";
            string disk = record["disk"] is null ? "" : $" disk={record["disk"]}";
            string detail = record["detail"] is null ? "" : $" ({record["detail"]})";
            Console.WriteLine($"{record["seq"],6} {record["time"]} {record["identity"]} {record["operation"]}{key}{disk} {record["result"]}{detail}");
        }
        return 0;
    }

    private static int Verify(string? configPath)
    {
        if (CommandSettings.Load(configPath) is not { } settings) return 2;
        string? problem = AuditLog.Open(settings.AuditLog).Verify(out int records);
        if (problem is null)
        {
            Console.WriteLine($"audit log intact: {records} records ({settings.AuditLog})");
            return 0;
        }
        Console.Error.WriteLine($"managed-disks: audit log {settings.AuditLog} has been tampered with: {problem}");
        return 1;
    }
}
