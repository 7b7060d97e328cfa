# test/tap.sh: TAP output for the shell tests, sourced by them.
#   ok STATUS DESCRIPTION   numbers the check, prints "ok" when STATUS is 0,
#                           else "not ok" and counts it in $failed
n=0
failed=0
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}
