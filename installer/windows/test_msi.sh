#!/usr/bin/env bash
# CI on Windows: silent install of the MSI, the installed --self-test and --version, then silent uninstall, and
# check that nothing is left in Program Files. Run as Administrator (GitHub's runners are). Cannot run on Linux.
set -euo pipefail
msi="$(cygpath -w "${1:?usage: test_msi.sh dist/SpineDesk-<version>-x64.msi}")"
msiexec //i "$msi" //qn //l*v install.log || { cat install.log; exit 1; }
exe="/c/Program Files/Spine Desk/spinedesk.exe"
[ -f "/c/ProgramData/SpineDesk/spinedesk.toml.example" ]
# The site configuration folder's own ACL: protected, and nobody but Administrators and SYSTEM may write (0xd0156:
# write data, append, write EA / attributes, delete (children too), WRITE_DAC, WRITE_OWNER).
powershell -NoProfile -Command '$a = Get-Acl "C:\ProgramData\SpineDesk"; $a.Access | Format-Table -AutoSize | Out-String | Write-Host;
  if (-not $a.AreAccessRulesProtected) { Write-Host "ACL still inherited from ProgramData"; exit 1 }
  $w = $a.Access | Where-Object { $_.IdentityReference -notmatch "\\(Administrators|SYSTEM)$" -and ([int]$_.FileSystemRights -band 0xd0156) }
  if ($w) { Write-Host "others may write:"; $w | Out-String | Write-Host; exit 1 }'
"$exe" --version
QT_QPA_PLATFORM=offscreen "$exe" --self-test
"$exe" wes check --format json > wes.json || [ $? -eq 1 ]   # compliant (0) or not (1): it ran
python -c "import json; json.load(open('wes.json'))"
msiexec //x "$msi" //qn //l*v uninstall.log || { cat uninstall.log; exit 1; }
[ ! -e "/c/Program Files/Spine Desk" ] || { echo "Program Files\\Spine Desk left behind" >&2; exit 1; }
echo "MSI install/self-test/uninstall OK"
