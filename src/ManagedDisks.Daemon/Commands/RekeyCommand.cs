using System.CommandLine;
using ManagedDisks.Daemon.Admin;
using ManagedDisks.Daemon.Configuration;

namespace ManagedDisks.Daemon.Commands;

/// <summary>
/// <c>managed-disks disk rekey NAME</c>: starts re-encrypting a served disk under a fresh DEK
/// and follows it until it ends (a line updated in place on a terminal, a line per 10% otherwise).
/// </summary>
internal static class RekeyCommand
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    public static Command Build(Option<string?> configOption)
    {
        var name = new Argument<string>("NAME") { Description = "The disk to re-key" };
        var noWait = new Option<bool>("--no-wait") { Description = "Return once it has started; follow it with GET /v1/disks/NAME/rekey or by running the command again" };
        var command = new Command("rekey", "Re-encrypt a served disk's data under a fresh DEK while it stays attached; crash-safe, resumes by itself") { name, noWait };
        command.SetAction(async parse =>
        {
            string path = $"v1/disks/{Uri.EscapeDataString(parse.GetValue(name)!)}/rekey";
            bool wait = !parse.GetValue(noWait);
            int outcome = 0;
            int call = await AdminCommands.Call(parse.GetValue(configOption), async client =>
            {
                RekeyView progress;
                try
                {
                    progress = await client.SendAsync<RekeyView>(HttpMethod.Post, path);
                }
                catch (AdminClientException e) when (wait && e.Message.Contains("already running", StringComparison.Ordinal))
                {
                    progress = await client.SendAsync<RekeyView>(HttpMethod.Get, path); // follow the one that runs
                }
                if (wait) outcome = await FollowAsync(client, path, progress);
                else AdminCommands.Print(progress);
            });
            return call != 0 ? call : outcome;
        });
        return command;
    }

    /// <summary>Polls the progress until the re-key ends; 0 if it completed.</summary>
    private static async Task<int> FollowAsync(AdminClient client, string path, RekeyView progress)
    {
        bool terminal = !Console.IsOutputRedirected;
        int reportedDecile = -1;
        while (true)
        {
            if (terminal) Console.Write($"\r{Line(progress)}\u001b[K");
            else if ((int)(progress.Percent / 10) is var decile && decile > reportedDecile && progress.State == "running")
            {
                Console.WriteLine(Line(progress));
                reportedDecile = decile;
            }
            if (progress.State != "running") break;
            await Task.Delay(PollInterval);
            progress = await client.SendAsync<RekeyView>(HttpMethod.Get, path);
        }
        if (terminal) Console.WriteLine();
        switch (progress.State)
        {
            case "completed":
                Console.WriteLine($"disk {progress.Disk} re-keyed: {Units.FormatSize(progress.Size)} under a new DEK wrapped by {progress.KeyStore}/{progress.Key}@{progress.KeyVersion}; the old DEK is wiped");
                return 0;
            default:
                await Console.Error.WriteLineAsync($"managed-disks: the re-key of disk {progress.Disk} is {progress.State} at {progress.Percent:0.0}%: {progress.Error}; run `managed-disks disk rekey {progress.Disk}` to resume it");
                return 1;
        }
    }

    private static string Line(RekeyView p) =>
        $"re-keying {p.Disk}: {p.Percent,5:0.0}%  {Units.FormatSize(p.Watermark)} of {Units.FormatSize(p.Size)}  {Units.FormatSize((long)p.Rate)}/s";
}
